"""Partial-progress signals of sampled molecule strings: the syntax a model learns before it writes valid
molecules (docs/lab/learning-molecules.md).

Validity (RDKit parses and sanitises the molecule) is the end of a chain of simpler skills, each of
which a sample either has or lacks, and which move earlier in training than validity does:

* ``rings_paired``: every ring-closure label (a digit or ``%nn``) occurs an even number of times within
  its fragment, so every ring that opens also closes (SMILES reuses a label after it closes, so an even
  count is exactly the pairing condition);
* ``branches_balanced``: within each fragment the parentheses nest (the depth never goes below 0 and ends
  at 0) and no branch is empty (``()``);
* ``attachments_matched`` (bracket SAFE only): every attachment label ``<k>`` occurs exactly twice, in two
  different fragments, so that every open bond between fragments has a partner;
* ``valences_legal``: the string parses as a molecule (RDKit, unsanitised; attachments of bracket SAFE are
  capped by dummy atoms, so a fragment is judged on its own even when its partners are missing) and no atom
  exceeds an allowed valence (``Chem.DetectChemistryProblems`` reports no ``AtomValenceException``).

A valid molecule has all four; the shares of samples with each are :func:`progress_signals`.
"""

from __future__ import annotations

import re
from collections import Counter

from insertgen.tasks.molecules.metrics import quiet_rdkit
from insertgen.tasks.molecules.tokens import is_ring_label, is_tokenizable, tokenize

ATTACHMENT = re.compile(r"<(%?\d+)>")
FIRST_CAP_LABEL = 60  # bracket-SAFE attachments are capped with ring labels %60, %61, ... (unused by MOSES)


def _fragments(tokens: list[str]) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for tok in tokens:
        if tok == ".":
            out.append([])
        else:
            out[-1].append(tok)
    return out


def _tokens(text: str) -> list[str] | None:
    return tokenize(text) if is_tokenizable(text) else None


def rings_paired(text: str) -> bool:
    """Every ring-closure label occurs an even number of times in each fragment of ``text``."""
    tokens = _tokens(text)
    if tokens is None:
        return False
    return all(n % 2 == 0 for fragment in _fragments(tokens)
               for n in Counter(t for t in fragment if is_ring_label(t)).values())


def branches_balanced(text: str) -> bool:
    """The parentheses of each fragment nest properly and enclose at least one token each."""
    tokens = _tokens(text)
    if tokens is None:
        return False
    for fragment in _fragments(tokens):
        depth = 0
        for previous, tok in zip([None, *fragment], fragment):
            if tok == "(":
                depth += 1
            elif tok == ")":
                depth -= 1
                if depth < 0 or previous == "(":
                    return False
        if depth:
            return False
    return True


def attachments_matched(text: str) -> bool:
    """Bracket SAFE: every attachment label occurs exactly twice, in two different fragments."""
    tokens = _tokens(text)
    if tokens is None:
        return False
    where: dict[str, list[int]] = {}
    for index, fragment in enumerate(_fragments(tokens)):
        for tok in fragment:
            match = ATTACHMENT.fullmatch(tok)
            if match:
                where.setdefault(match[1], []).append(index)
    return all(len(places) == 2 and places[0] != places[1] for places in where.values())


def capped(text: str) -> str:
    """``text`` with each bracket-SAFE attachment ``<k>`` closed on a dummy atom of its own (a ring label
    from ``%60`` up, and ``.*%nn`` appended), so that every fragment is a SMILES on its own."""
    caps: list[str] = []

    def cap(_match) -> str:
        caps.append(f"%{FIRST_CAP_LABEL + len(caps)}")
        return caps[-1]

    body = ATTACHMENT.sub(cap, text)
    return body + "".join(f".*{label}" for label in caps)


def valences_legal(text: str) -> bool:
    """``text`` (SMILES or bracket SAFE) parses, unsanitised, and no atom has more bonds than it may."""
    from rdkit import Chem  # optional: the molecules extra

    if not text or _tokens(text) is None:
        return False
    mol = Chem.MolFromSmiles(capped(text), sanitize=False)
    if mol is None:
        return False
    return not any(p.GetType() == "AtomValenceException" for p in Chem.DetectChemistryProblems(mol))


def progress_signals(texts: list[str], safe: bool) -> dict[str, float]:
    """The share of ``texts`` with each signal of the module docstring (``attachments_matched`` only for
    bracket SAFE, ``safe``); empty ``texts`` give 0."""
    quiet_rdkit()
    checks = {"rings_paired": rings_paired, "branches_balanced": branches_balanced, "valences_legal": valences_legal}
    if safe:
        checks["attachments_matched"] = attachments_matched
    n = len(texts)
    return {name: (sum(check(t) for t in texts) / n if n else 0.0) for name, check in checks.items()}
