"""Write src/insertgen/tasks/molecules/data/moses-train-rewrites.json: the MOSES training SMILES that the
installed RDKit canonicalises to another string (insertgen.tasks.molecules.novelty_reference). Run it after an
RDKit upgrade; it reads $INSERTGEN_CACHE/moses-train-canonical.txt when present (delete it first if an older
RDKit made it), else canonicalises the set (about four minutes of one core)."""

import sys

from insertgen.tasks.molecules.novelty_reference import REWRITES, write_shipped_rewrites

if __name__ == "__main__":
    written = write_shipped_rewrites()
    print(f"{REWRITES}: {len(written['rewrites'])} rewrites (RDKit {written['rdkit']})", file=sys.stderr)
