"""The package's layering (insertgen/__init__.py): each layer imports only the layers before it, model
families and task families do not import each other, there are no import cycles, and imports inside
functions are kept for heavy optional dependencies, each with its reason."""

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = SRC.parent
PACKAGE = SRC / "insertgen"
LAYERS = {"core": 0, "nn": 1, "models": 2, "tasks": 2, "engine": 3, "apps": 4}
SIDEWAYS = ("models", "tasks")  # the same layer, kept apart
LAZY_ALLOWED = {"matplotlib", "scipy", "rdkit", "sascorer", "safe", "fcd_torch", "playwright"}
LAZY_TORCH = {"insertgen.core.threads"}  # torch must load after the thread policy is set
# the package's public load_run, imported on first use so that `insertgen --help` does not load torch
LAZY_PUBLIC = {("insertgen", "insertgen.engine.trained_run.TrainedRun"),
               ("insertgen", "insertgen.engine.trained_run.train"),
               ("insertgen", "insertgen.models.registry.register_family"),
               ("insertgen", "insertgen.tasks.register_task")}  # the public API, loaded on first use


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p.read_text() for p in PACKAGE.rglob("*.py")}  # module -> source


def resolve(name: str) -> str | None:
    """The module of ``name`` (a module, or a name defined in one)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str, sources: dict = MODULES):
    """(imported name, inside a function?, line, source line) for every import of ``module``."""
    text = sources[module]
    lines = text.splitlines()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            yield name, node.col_offset > 0, node.lineno, lines[node.lineno - 1]


def layer(module: str) -> tuple[int, str]:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__main__",):
        return 5, "api"  # the package root and python -m insertgen: above every layer
    return LAYERS[parts[1]], parts[1]


def test_every_module_belongs_to_a_layer():
    unknown = [m for m in MODULES if len(m.split(".")) > 1 and m.split(".")[1] not in (*LAYERS, "__main__")]
    assert not unknown, f"modules outside the layers of insertgen/__init__.py: {unknown}"


def against_layers(sources: dict) -> list[str]:
    bad = []
    for module in sources:
        here, name = layer(module)
        for imported, _, line, _ in imports(module, sources):
            target = resolve(imported) if imported.startswith("insertgen") else None
            if target is None or target == module:
                continue
            there, other = layer(target)
            if there > here or (here == there == 2 and name != other):
                bad.append(f"{module}:{line} imports {target}")
    return bad


def test_no_module_imports_from_a_layer_above_it_or_sideways():
    bad = against_layers(MODULES)
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_there_are_no_import_cycles():
    graph = {m: {resolve(i) for i, *_ in imports(m) if i.startswith("insertgen")} - {None, m} for m in MODULES}
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    # the root package imports engine.run (its public load_run); nothing below imports the root
    cycles = [c for c in cycles if "insertgen" not in c]
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_imports_inside_functions_are_only_heavy_optional_dependencies_with_a_reason():
    bad = []
    for module in MODULES:
        for imported, inside, line, source in imports(module):
            if not inside:
                continue
            top = imported.split(".")[0]
            allowed = top in LAZY_ALLOWED or (top == "torch" and module in LAZY_TORCH) or \
                (module, imported) in LAZY_PUBLIC
            if not allowed or "#" not in source:
                bad.append(f"{module}:{line}: {source.strip()}")
    assert not bad, "imports inside functions (allowed: heavy optional dependencies, with a # reason):\n" + \
        "\n".join(bad)


def test_the_checker_sees_an_upward_and_a_sideways_import():
    """The layering check itself: a core module importing the engine, a model importing a task."""
    sources = {**MODULES, "insertgen.core._probe": "def f():\n    from insertgen.engine.train import Trainer\n",
               "insertgen.models._probe": "from insertgen.tasks.star.task import StarTask\n"}
    assert against_layers(sources) == ["insertgen.core._probe:2 imports insertgen.engine.train",
                                       "insertgen.models._probe:1 imports insertgen.tasks.star.task"]


CITATION = re.compile(r"docs/[\w./-]+\.md\b|(?<![\w/.\"'])[\w-]+\.md\b")  # "x.md" / OUT/x.md: outputs


def test_every_document_a_docstring_cites_exists_in_the_repository():
    """Docstrings and comments cite documents by path (``docs/methods/flexmdm.md#loss``); each one exists
    in the repository (no citations of notes kept outside it)."""
    missing = []
    for path in [*PACKAGE.rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py"), *(ROOT / "scripts").rglob("*.py")]:
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            for cited in CITATION.findall(line):
                name = cited.split("#")[0]
                candidates = [ROOT / name, ROOT / "docs" / name, ROOT / "docs" / "methods" / name]
                if not any(c.is_file() for c in candidates):
                    missing.append(f"{path.relative_to(ROOT)}:{lineno}: {cited}")
    assert not missing, "documents cited but not in the repository:\n" + "\n".join(missing)
