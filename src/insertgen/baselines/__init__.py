"""Baselines the insertion models are judged against: left-to-right ARM and fixed-canvas MDM."""
