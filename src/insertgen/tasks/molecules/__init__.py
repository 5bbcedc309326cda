"""De novo molecule generation on MOSES: SMILES and bracket-SAFE strings, RDKit metrics
(docs/methods/tasks.md#molecules)."""
