"""Fragment prompts for constrained molecule generation (GenMol's four tasks), built offline from molecules.

GenMol and LoFlexMDM v2 read their prompts from a fragment file that is not public offline; here every
prompt is cut out of a real molecule, deterministically, so the molecule it came from is known (the
``distance`` metric compares generations to it) and the same cut of a *training* molecule gives a
training pair. For a molecule with heavy-atom graph G, a **bridge** is an acyclic single bond (removing
it disconnects G). Each task picks a set of cut bonds C; cutting them splits the molecule into the
*prompt side* (kept) and the *completion* (generated):

=================  =========================================================================================
task               prompt (the kept fragment(s)) and cut bonds
=================  =========================================================================================
``linker``         two bridges, each with a ring atom on its outer side, such that the atoms between them
                   (the linker: 1-10 atoms, none in a ring) join the two outer pieces; prompt = the two
                   outer (terminal) pieces, completion = the linker
``motif``          one bridge; prompt = the side with a ring, 5 atoms or more, leaving 3 or more atoms
                   (both sides can qualify); completion = the other side
``scaffold``       the Bemis-Murcko scaffold (ring atoms and the chains joining them, plus atoms
                   double-bonded to those) when it leaves 1-6 single-bonded side chains; prompt = the
                   scaffold, completion = the side chains
``superstructure`` one ring system (fused rings and their double-bonded exocyclic atoms) of a molecule
                   with at least two ring systems, every bond leaving it single; prompt = the ring
                   system, completion = the rest
=================  =========================================================================================

When a molecule offers several candidates (linker, motif, superstructure), one is drawn with
``numpy.random.default_rng([seed, index])``; candidates are enumerated in bond/atom index order of the
RDKit molecule of the canonical SMILES, so the draw is reproducible.

**String form (bracket SAFE).** Every cut bond gets a label; the molecule is also cut at its single-bond BRICS bonds
(as SAFE does) so that the pieces look like the de novo task's fragments. Each piece is written as RDKit
SMILES rooted at its first heavy atom, with the dummy atom of each cut written as the attachment ``<k>``
on its neighbour. The target is ``prompt . completion``: prompt pieces, then completion pieces, each
group by decreasing size (ties by string); labels are renumbered 1, 2, ... by first appearance. So the
prompt is literally the first tokens of the target, and its labels that occur once are the open
attachment points that the completion closes (GenMol: "fragment, then ``.``, then generate").

**Fragment query** (:class:`FragmentQuery`). A generation counts only if it contains the prompt's
fragment(s): the prompt without its open attachment points is read as a SMARTS pattern (each atom
matches its own element and aromaticity; labels shared by two prompt pieces are bonds), and some match
must give every atom that carries an attachment point at least one more heavy neighbour per point than
it has in the fragment, i.e. a substituent sits where the prompt has one. (A wildcard atom per
attachment, as SAFE's ``filter_by_substructure_constraints`` does, would reject a source molecule whose
one-atom linker carries both attachments.) For ``superstructure`` the attachments are not required: any
molecule containing the ring system counts, as in GenMol, whose substructures have no attachment points.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from insertgen.core.errors import InsertgenError
from insertgen.tasks.molecules.tokens import tokenize

FRAGMENT_TASKS = ("linker", "motif", "scaffold", "superstructure")
LINKER_ATOMS = (1, 10)
MOTIF_MIN_ATOMS, MOTIF_MIN_REST = 5, 3
SCAFFOLD_SIDE_CHAINS = (1, 6)
BENCHMARK_SEED = 2026
BENCHMARK_PROMPTS = 100
VALIDATION_PROMPTS = 100


@dataclass(frozen=True)
class FragmentPrompt:
    """One prompt: the source molecule, the prompt and target (bracket SAFE) and the fragment query."""

    task: str
    source: str  # canonical SMILES of the molecule the prompt was cut from
    prompt: str  # bracket SAFE of the kept fragment(s): the first tokens of ``target``
    target: str  # bracket SAFE of the whole molecule: prompt, ".", completion
    query: str  # SMARTS of the fragment(s) every valid generation must contain (see FragmentQuery)


# ----------------------------------------------------------------------------------- molecule graph


def _neighbours(mol) -> list[list[int]]:
    return [[n.GetIdx() for n in a.GetNeighbors()] for a in mol.GetAtoms()]


def _component(adjacency: list[list[int]], start: int, blocked: set[frozenset]) -> set[int]:
    """Atoms reachable from ``start`` without crossing a blocked bond (given as atom-pair sets)."""
    seen, stack = {start}, [start]
    while stack:
        a = stack.pop()
        for b in adjacency[a]:
            if b not in seen and frozenset((a, b)) not in blocked:
                seen.add(b)
                stack.append(b)
    return seen


def bridges(mol) -> list[tuple[int, int]]:
    """Acyclic single bonds between heavy atoms, as (begin, end) atom indices in bond order."""
    from rdkit import Chem  # optional: the molecules extra

    return [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()
            if not b.IsInRing() and b.GetBondType() == Chem.BondType.SINGLE]


def _exo_double_bonded(mol, atoms: set[int]) -> set[int]:
    """Atoms outside ``atoms`` of degree 1 joined to one of them by a double bond (=O, =S, =N, ...)."""
    from rdkit import Chem  # optional: the molecules extra

    extra = set()
    for b in mol.GetBonds():
        if b.GetBondType() != Chem.BondType.DOUBLE:
            continue
        for inner, outer in ((b.GetBeginAtom(), b.GetEndAtom()), (b.GetEndAtom(), b.GetBeginAtom())):
            if inner.GetIdx() in atoms and outer.GetIdx() not in atoms and outer.GetDegree() == 1:
                extra.add(outer.GetIdx())
    return extra


def murcko_atoms(mol) -> set[int]:
    """Bemis-Murcko scaffold atoms: prune non-ring atoms of degree <= 1 until none is left, then add back
    the exocyclic / chain atoms double-bonded to the scaffold (RDKit's MurckoScaffold keeps those too)."""
    adjacency = _neighbours(mol)
    alive = set(range(mol.GetNumAtoms()))
    ring = {a.GetIdx() for a in mol.GetAtoms() if a.IsInRing()}
    if not ring:
        return set()
    changed = True
    while changed:
        changed = False
        for a in sorted(alive - ring):
            if sum(n in alive for n in adjacency[a]) <= 1:
                alive.discard(a)
                changed = True
    return alive | _exo_double_bonded(mol, alive)


def ring_systems(mol) -> list[set[int]]:
    """Fused ring systems (rings sharing an atom merged), each with its double-bonded exocyclic atoms,
    ordered by their smallest atom index."""
    systems: list[set[int]] = []
    for ring in mol.GetRingInfo().AtomRings():
        ring = set(ring)
        merged = [s for s in systems if s & ring]
        for s in merged:
            systems.remove(s)
            ring |= s
        systems.append(ring)
    systems = [s | _exo_double_bonded(mol, s) for s in systems]
    return sorted(systems, key=min)


def _exit_bonds(mol, atoms: set[int]) -> list[tuple[int, int]] | None:
    """Bonds from ``atoms`` to the rest as (inside, outside); None if one of them is not a single bond."""
    from rdkit import Chem  # optional: the molecules extra

    out = []
    for b in mol.GetBonds():
        i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        if (i in atoms) == (j in atoms):
            continue
        if b.GetBondType() != Chem.BondType.SINGLE:
            return None
        out.append((i, j) if i in atoms else (j, i))
    return out


# ----------------------------------------------------------------------------------- the four cuts
# each returns candidate (prompt atoms, cut bonds) pairs


def linker_candidates(mol) -> list[tuple[set[int], list[tuple[int, int]]]]:
    adjacency = _neighbours(mol)
    n = mol.GetNumAtoms()
    ring = {a.GetIdx() for a in mol.GetAtoms() if a.IsInRing()}
    cuts = bridges(mol)
    out = []
    for x in range(len(cuts)):
        for y in range(x + 1, len(cuts)):
            (a1, b1), (a2, b2) = cuts[x], cuts[y]
            blocked = {frozenset(cuts[x]), frozenset(cuts[y])}
            # outer side of each cut: the side not containing the other cut
            side1 = _component(adjacency, a1, blocked)
            if a2 in side1 or b2 in side1:
                side1 = _component(adjacency, b1, blocked)
            side2 = _component(adjacency, a2, blocked)
            if a1 in side2 or b1 in side2:
                side2 = _component(adjacency, b2, blocked)
            linker = set(range(n)) - side1 - side2
            if not (LINKER_ATOMS[0] <= len(linker) <= LINKER_ATOMS[1]) or linker & ring:
                continue
            inner1 = a1 if a1 in side1 else b1
            inner2 = a2 if a2 in side2 else b2
            if inner1 not in ring or inner2 not in ring:
                continue
            out.append((side1 | side2, [cuts[x], cuts[y]]))
    return out


def motif_candidates(mol) -> list[tuple[set[int], list[tuple[int, int]]]]:
    adjacency = _neighbours(mol)
    n = mol.GetNumAtoms()
    ring = {a.GetIdx() for a in mol.GetAtoms() if a.IsInRing()}
    out = []
    for bond in bridges(mol):
        for start in bond:
            side = _component(adjacency, start, {frozenset(bond)})
            if side & ring and len(side) >= MOTIF_MIN_ATOMS and n - len(side) >= MOTIF_MIN_REST:
                out.append((side, [bond]))
    return out


def scaffold_candidates(mol) -> list[tuple[set[int], list[tuple[int, int]]]]:
    scaffold = murcko_atoms(mol)
    if not scaffold or len(scaffold) == mol.GetNumAtoms():
        return []
    exits = _exit_bonds(mol, scaffold)
    if exits is None or not SCAFFOLD_SIDE_CHAINS[0] <= len(exits) <= SCAFFOLD_SIDE_CHAINS[1]:
        return []
    return [(scaffold, exits)]


def superstructure_candidates(mol) -> list[tuple[set[int], list[tuple[int, int]]]]:
    systems = ring_systems(mol)
    if len(systems) < 2:
        return []
    out = []
    for system in systems:
        exits = _exit_bonds(mol, system)
        if exits:
            out.append((system, exits))
    return out


CANDIDATES = {"linker": linker_candidates, "motif": motif_candidates, "scaffold": scaffold_candidates,
              "superstructure": superstructure_candidates}


# ----------------------------------------------------------------------------------- writing


_DUMMY = re.compile(r"\[(\d+)\*\]")


def _piece_string(piece) -> str:
    """SMILES of a cut piece rooted at its first heavy atom, dummies ``[k*]`` written as ``<k>``."""
    from rdkit import Chem  # optional: the molecules extra

    root = next(a.GetIdx() for a in piece.GetAtoms() if a.GetAtomicNum() != 0)
    smiles = Chem.MolToSmiles(piece, rootedAtAtom=root, canonical=True)
    smiles = _DUMMY.sub(lambda m: f"<{m.group(1)}>", smiles)
    return re.sub(r"\((<\d+>)\)", r"\1", smiles)


def prompt_from_smiles(smiles: str) -> str:
    """A fragment written as SMILES with attachment points as dummy atoms (``*``, ``[*]``, ``[1*]``,
    ``[*:1]``; pieces joined by ``.``) -> the bracket-SAFE prompt the builders would write: BRICS-cut,
    pieces by decreasing size, each dummy an attachment ``<k>``, labels numbered by first appearance.
    Raises InsertgenError when RDKit cannot read it or a dummy atom is not a single-bonded end."""
    from rdkit import Chem  # optional: the molecules extra
    from rdkit.Chem import BRICS  # optional: the molecules extra

    mol = Chem.MolFromSmiles(smiles)
    if mol is None or mol.GetNumAtoms() == 0:
        raise InsertgenError(f"RDKit cannot read the fragment {smiles!r}")
    dummies = [a for a in mol.GetAtoms() if a.GetAtomicNum() == 0]
    for k, atom in enumerate(dummies, start=1):
        if atom.GetDegree() != 1 or atom.GetBonds()[0].GetBondType() != Chem.BondType.SINGLE:
            raise InsertgenError(f"attachment point {k} of {smiles!r} must be a dummy atom with one single bond")
        atom.SetAtomMapNum(0)
        atom.SetIsotope(k)
    if len(dummies) == mol.GetNumAtoms():
        raise InsertgenError(f"the fragment {smiles!r} has no atoms besides its attachment points")
    heavy = {a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() != 0}
    bonds = [mol.GetBondBetweenAtoms(*pair).GetIdx() for pair, _ in BRICS.FindBRICSBonds(mol)
             if set(pair) <= heavy and mol.GetBondBetweenAtoms(*pair).GetBondType() == Chem.BondType.SINGLE]
    labels = [(len(dummies) + k + 1,) * 2 for k in range(len(bonds))]
    try:
        cut = Chem.FragmentOnBonds(mol, bonds, dummyLabels=labels) if bonds else Chem.Mol(mol)
        pieces = [_piece_string(piece) for piece in Chem.GetMolFrags(cut, asMols=True, sanitizeFrags=True)]
    except Exception as e:  # RDKit refuses a piece (sanitisation): say which input, not RDKit's internals
        raise InsertgenError(f"cannot write the fragment {smiles!r} as bracket SAFE ({type(e).__name__})") from None
    return renumber(".".join(sorted(pieces, key=lambda s: (-len(tokenize(s)), s))))


def renumber(text: str) -> str:
    """Attachment labels renumbered 1, 2, ... in order of first appearance."""
    labels: dict[str, str] = {}

    def new(m: re.Match) -> str:
        return labels.setdefault(m.group(0), f"<{len(labels) + 1}>")

    return re.sub(r"<%?\d+>", new, text)


def write(mol, prompt_atoms: set[int], cuts: list[tuple[int, int]]) -> tuple[str, str]:
    """(prompt, target) bracket SAFE strings for ``mol`` cut at ``cuts`` and its BRICS bonds; with no
    prompt atoms the prompt is empty and the target is the whole molecule (a de novo example)."""
    from rdkit import Chem  # optional: the molecules extra
    from rdkit.Chem import BRICS  # optional: the molecules extra

    cut_pairs = [frozenset(c) for c in cuts]
    extra = [frozenset(pair) for pair, _ in BRICS.FindBRICSBonds(mol)
             if mol.GetBondBetweenAtoms(*pair).GetBondType() == Chem.BondType.SINGLE]
    bonds = cut_pairs + [p for p in dict.fromkeys(extra) if p not in cut_pairs]
    bond_ids = [mol.GetBondBetweenAtoms(*sorted(p)).GetIdx() for p in bonds]
    labels = [(k + 1, k + 1) for k in range(len(bond_ids))]
    cut = Chem.FragmentOnBonds(mol, bond_ids, dummyLabels=labels) if bond_ids else Chem.Mol(mol)
    groups: dict[bool, list[str]] = {True: [], False: []}
    frag_atoms = Chem.GetMolFrags(cut, asMols=False, sanitizeFrags=False)
    pieces = Chem.GetMolFrags(cut, asMols=True, sanitizeFrags=True)
    for atoms, piece in zip(frag_atoms, pieces):
        heavy = [a for a in atoms if a < mol.GetNumAtoms()]  # dummies are appended after the original atoms
        groups[heavy[0] in prompt_atoms].append(_piece_string(piece))
    ordered = [sorted(groups[side], key=lambda s: (-len(tokenize(s)), s)) for side in (True, False)]
    prompt_part, rest = ".".join(ordered[0]), ".".join(ordered[1])
    target = renumber(".".join(part for part in (prompt_part, rest) if part))
    prompt = ".".join(target.split(".")[: len(ordered[0])])  # the prompt pieces, relabelled
    return prompt, target


_NOT_ATOMS = {"(", ")", ".", "-", "=", "#", "$", ":", "/", "\\", "~"}


def _is_atom(token: str) -> bool:
    return token not in _NOT_ATOMS and not token.startswith("<") and not token.isdigit() and not token.startswith("%")


def query_smarts(prompt: str) -> tuple[str, dict[int, int]]:
    """The prompt's fragment(s) as SMARTS without attachment points, and per atom carrying attachments
    (index = its order among the atoms of the string) how many. Labels that occur twice join two prompt
    pieces (a ring bond in the SMARTS); labels that occur once are open attachments."""
    tokens = tokenize(prompt)
    counts: dict[str, int] = {}
    for tok in tokens:
        if tok.startswith("<"):
            counts[tok] = counts.get(tok, 0) + 1
    bad = [lab for lab, c in counts.items() if c > 2]
    if bad:
        raise InsertgenError(f"attachment {bad[0]} occurs {counts[bad[0]]} times in the prompt {prompt!r}")
    number = {lab: f"%{50 + i}" for i, lab in enumerate(lab for lab, c in counts.items() if c == 2)}
    out, attachments, atom = [], {}, -1
    for tok in tokens:
        if tok in number:
            out.append(number[tok])
        elif tok.startswith("<"):
            if atom < 0:
                raise InsertgenError(f"the prompt {prompt!r} starts with an attachment point, not an atom")
            attachments[atom] = attachments.get(atom, 0) + 1
        else:
            atom += _is_atom(tok)
            out.append(tok)
    return "".join(out), attachments


@dataclass(frozen=True)
class FragmentQuery:
    """Substructure test of one prompt: the fragment(s) must match, with every atom that carries an
    attachment point substituted (at least one more heavy neighbour than in the fragment per point) when
    ``attachments`` is set. A query atom of the SMARTS matches only its own element and aromaticity."""

    smarts: str
    required_degree: tuple[tuple[int, int], ...]  # (query atom, minimal degree in the molecule)

    @classmethod
    def of(cls, prompt: str, task: str) -> "FragmentQuery":
        from rdkit import Chem  # optional: the molecules extra

        smarts, attachments = query_smarts(prompt)
        mol = Chem.MolFromSmarts(smarts)
        if mol is None:
            raise InsertgenError(f"the fragment {prompt!r} does not make a substructure query ({smarts!r})")
        required = () if task == "superstructure" else tuple(
            (a, mol.GetAtomWithIdx(a).GetDegree() + k) for a, k in sorted(attachments.items()))
        return cls(smarts, required)

    def matches(self, mol) -> bool:

        query = _compiled(self.smarts)
        if not self.required_degree:
            return mol.HasSubstructMatch(query)
        for match in mol.GetSubstructMatches(query, uniquify=False, maxMatches=10_000):
            if all(mol.GetAtomWithIdx(match[a]).GetDegree() >= d for a, d in self.required_degree):
                return True
        return False


@lru_cache(maxsize=4096)
def _compiled(smarts: str):
    from rdkit import Chem  # optional: the molecules extra

    return Chem.MolFromSmarts(smarts)


# ----------------------------------------------------------------------------------- building


def canonical_mol(smiles: str):
    """The RDKit molecule of ``smiles`` with the atom order of its canonical SMILES (so that cuts are
    enumerated the same way whatever SMILES spelling came in), or None when it does not parse."""
    from rdkit import Chem  # optional: the molecules extra

    mol = Chem.MolFromSmiles(smiles)
    return None if mol is None else Chem.MolFromSmiles(Chem.MolToSmiles(mol))


def build_prompt(smiles: str, task: str, seed: int, index: int) -> FragmentPrompt | None:
    """The ``task`` prompt cut from molecule ``smiles`` (None when the molecule has no candidate)."""
    from rdkit import Chem  # optional: the molecules extra

    if task not in CANDIDATES:
        raise InsertgenError(f"unknown fragment task {task!r}; tasks: {', '.join(FRAGMENT_TASKS)}")
    mol = canonical_mol(smiles)
    if mol is None:
        return None
    candidates = CANDIDATES[task](mol)
    if not candidates:
        return None
    atoms, cuts = candidates[int(np.random.default_rng([seed, index]).integers(len(candidates)))]
    try:
        prompt, target = write(mol, atoms, cuts)
    except Exception:  # a piece RDKit cannot sanitise on its own (rare): no prompt from this molecule
        return None
    return FragmentPrompt(task, Chem.MolToSmiles(mol), prompt, target, query_smarts(prompt)[0])


def build_prompts(smiles: list[str], task: str, count: int, seed: int, fits=None, start: int = 0):
    """The first ``count`` prompts of ``task`` over ``smiles[start:]`` (in order), skipping molecules
    without a candidate or whose prompt ``fits`` rejects; returns (prompts, index after the last used)."""
    out = []
    i = start
    while len(out) < count and i < len(smiles):
        p = build_prompt(smiles[i], task, seed, i)
        if p is not None and (fits is None or fits(p)):
            out.append(p)
        i += 1
    return out, i


def benchmark_order(n: int, seed: int = BENCHMARK_SEED) -> np.ndarray:
    """The order in which MOSES test molecules are tried for the benchmark prompts."""
    return np.random.default_rng(seed).permutation(n)


def build_benchmark(test_smiles: list[str], fits=None, count: int = BENCHMARK_PROMPTS,
                    validation: int = VALIDATION_PROMPTS, seed: int = BENCHMARK_SEED,
                    tasks=FRAGMENT_TASKS) -> dict[str, dict[str, list]]:
    """Per task of ``tasks``, ``count`` test prompts then ``validation`` more, from the MOSES test
    molecules in :func:`benchmark_order`. Returns ``{task: {"test": [...], "validation": [...]}}``."""
    order = benchmark_order(len(test_smiles), seed)
    ordered = [test_smiles[int(i)] for i in order]
    out = {}
    for task in tasks:
        test, nxt = build_prompts(ordered, task, count, seed, fits)
        val, _ = build_prompts(ordered, task, validation, seed, fits, start=nxt)
        out[task] = {"test": test, "validation": val}
    return out


def prompt_line(prompt: FragmentPrompt) -> str:
    return json.dumps(asdict(prompt), sort_keys=True)


def read_jsonl(path: Path) -> list[FragmentPrompt]:
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            obj = json.loads(line)
            out.append(FragmentPrompt(**{k: obj[k] for k in ("task", "source", "prompt", "target", "query")}))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise InsertgenError(f"{path}:{lineno}: not a fragment prompt record ({type(e).__name__}: {e})") from None
    return out
