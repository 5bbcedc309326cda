"""LoFlexMDM: FlexMDM whose per-token insertion schedules are learned by an auxiliary network."""
