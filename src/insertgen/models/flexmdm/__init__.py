"""Variable-length masked diffusion: insert masks, then unmask them (FlexMDM and relatives)."""
