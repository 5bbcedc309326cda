"""De novo molecule generation on MOSES: SMILES and bracket-SAFE strings, RDKit metrics
(spec: data_and_deps.md §3, loflexmdm.md §6.2, insertion_process.md §6.3)."""
