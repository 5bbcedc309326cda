"""The models layer: one folder per model family (flexmdm, loflexmdm, ip, arm, mdm) and the registry."""
