"""The fixed-canvas masked diffusion baseline (MDM)."""
