"""Bracket SAFE: SAFE strings whose inter-fragment attachment points are written ``<n>``.

SAFE (``safe-mol``) writes a molecule as fragments joined by ``.``, the bonds between fragments being
ring-closure numbers opened in one fragment and closed in another, alongside the ordinary ring
closures inside fragments. GenMol V2 and LoFlexMDM write the attachment numbers in angle brackets so
the two kinds cannot be confused. Our converter (written from that description):

* **encode**: ``safe.encode`` the SMILES; read its ring-closure tokens in order with SMILES semantics
  (a number closes the bond it opened last time, across ``.`` too); a pair whose two ends lie in
  different fragments is an attachment. Write each attachment as ``<k>``, numbering attachments
  ``1, 2, ...`` in order of first appearance (each label is used by exactly two tokens, so fragment
  order no longer matters: :func:`shuffle_fragments` may permute fragments freely; after a shuffle the
  labels no longer count up along the string, and :func:`renumber_attachments` makes them do so again).
* **decode**: give each attachment label an unused ring number (``%50`` upward), join, and parse with
  RDKit; the result is the canonical SMILES, or None when the string is not a molecule (a label that
  does not occur exactly twice, an unclosed ring, a valence error, ...).
"""

from __future__ import annotations

import numpy as np

from insertgen.tasks.molecules.tokens import is_ring_label, tokenize


def safe_to_bracket(safe_string: str) -> str:
    """A SAFE string -> bracket SAFE (attachments ``<1>, <2>, ...`` in order of first appearance)."""
    tokens = tokenize(safe_string)
    fragment_of, fragment = [], 0
    for tok in tokens:
        fragment += tok == "."
        fragment_of.append(fragment)
    open_at: dict[str, int] = {}
    partner: dict[int, int] = {}
    for i, tok in enumerate(tokens):
        if is_ring_label(tok):
            if tok in open_at:
                j = open_at.pop(tok)
                partner[i], partner[j] = j, i
            else:
                open_at[tok] = i
    if open_at:
        raise ValueError(f"SAFE string {safe_string!r} leaves ring numbers {sorted(open_at)} open")
    label: dict[int, int] = {}
    out = []
    for i, tok in enumerate(tokens):
        if i in partner and fragment_of[i] != fragment_of[partner[i]]:
            if i not in label:
                label[i] = label[partner[i]] = len(label) // 2 + 1
            out.append(f"<{label[i]}>")
        else:
            out.append(tok)
    return "".join(out)


def encode(smiles: str) -> str | None:
    """SMILES -> bracket SAFE, or None when SAFE cannot encode the molecule."""
    import safe  # optional: the molecules extra

    try:
        return safe_to_bracket(safe.encode(smiles, canonical=True))
    except Exception:  # safe raises its own error types for molecules it cannot slice
        return None


def to_smiles_string(bracket_safe: str) -> str | None:
    """Bracket SAFE -> a SMILES string (not yet validated) by replacing each attachment label with an
    unused ring number; None when a label does not occur exactly twice or the text does not tokenise."""
    try:
        tokens = tokenize(bracket_safe)
    except Exception:
        return None
    counts: dict[str, int] = {}
    for tok in tokens:
        if tok.startswith("<"):
            counts[tok] = counts.get(tok, 0) + 1
    if any(c != 2 for c in counts.values()) or len(counts) > 49:
        return None
    number = {lab: f"%{50 + i}" for i, lab in enumerate(counts)}
    return "".join(number.get(tok, tok) for tok in tokens)


def decode(bracket_safe: str) -> str | None:
    """Bracket SAFE -> canonical SMILES (RDKit), or None when it is not a valid molecule."""
    from rdkit import Chem  # optional: the molecules extra

    smiles = to_smiles_string(bracket_safe)
    if smiles is None:
        return None
    mol = Chem.MolFromSmiles(smiles)
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return Chem.MolToSmiles(mol)


def shuffle_fragments(tokens: list, separator, rng: np.random.Generator) -> list:
    """The fragments of a token list (split at ``separator``) in a random order; valid for bracket SAFE
    because every attachment label pairs exactly two tokens wherever they stand."""
    fragments, current = [], []
    for tok in tokens:
        if tok == separator:
            fragments.append(current)
            current = []
        else:
            current.append(tok)
    fragments.append(current)
    out: list = []
    for k, j in enumerate(rng.permutation(len(fragments))):
        if k:
            out.append(separator)
        out.extend(fragments[int(j)])
    return out


def renumber_attachments(tokens: list, label_of: dict, token_of: dict) -> list:
    """``tokens`` with their attachment labels renamed in order of first appearance along the list: the
    first distinct attachment token becomes label 1, the next new one 2, ... (both ends of a pair are the
    same token, so pairs stay pairs). ``label_of`` maps each attachment token to its label number, and
    ``token_of`` a label number back to its token; other tokens pass through. The molecule is unchanged:
    a label names only which two points bond."""
    rename: dict = {}
    out = []
    for tok in tokens:
        if tok in label_of:
            if tok not in rename:
                rename[tok] = token_of[len(rename) + 1]
            out.append(rename[tok])
        else:
            out.append(tok)
    return out
