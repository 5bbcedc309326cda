"""The left-to-right autoregressive baseline (ARM)."""
