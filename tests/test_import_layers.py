"""Data flows one way in ``src/selfbake``: no import circle, and no module imports a layer above its own.

The layers (DESIGN.md): cli -> commands -> engines -> scoring -> generation | tasks -> tools | tracking
-> models -> foundation (config, errors). Every import statement counts, at module level and inside
functions (a function-level import hides a circle; it does not remove it).

Why a hand-written walker and not import-linter: the intended layers put ``selfbake.baking.command``
above its own package ``selfbake.baking`` (import-linter's layers contain their descendants), package
``__init__`` modules re-export names from every layer of their package (a facade, resolved here to the
module that defines the name), and the circle check is per module (import-linter's ``acyclic_siblings``
is per package). The walker is ``ast`` over the source files, about a hundred lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# (layer, its modules or packages, whether different packages of the layer may import each other)
LAYERS: list[tuple[str, tuple[str, ...], bool]] = [
    ("cli", ("selfbake.__main__", "selfbake.cli"), True),
    (
        "commands",
        (
            "selfbake.baking.command",
            "selfbake.iteration.command",
            "selfbake.forge.command",
            "selfbake.evaluate",
            "selfbake.generate",
            "selfbake.environment",
        ),
        False,
    ),
    # engines may build on each other (evolve calls baking); circles still fail
    (
        "engines",
        (
            "selfbake.baking",
            "selfbake.iteration",
            "selfbake.forge",
            "selfbake.evolve",
            "selfbake.distill",
            "selfbake.synth",
            "selfbake.serve",
        ),
        True,
    ),
    ("scoring", ("selfbake.scoring",), False),
    ("generation | tasks", ("selfbake.generation", "selfbake.tasks"), False),
    ("tools | tracking", ("selfbake.tools", "selfbake.tracking"), False),
    ("models", ("selfbake.models",), False),
    # leaves every layer may use: typed configs and the user-error type
    ("foundation", ("selfbake.config", "selfbake.errors", "selfbake"), True),
]

# Known violations outside the baking room, each named and owned elsewhere (empty: none today).
ALLOWED: set[tuple[str, str]] = set()


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Module name -> file for every .py file of ``package`` under ``root`` (a package is its __init__)."""
    out = {}
    for path in sorted((root / package.replace(".", "/")).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, str | None]]:
    """(imported module, imported name or None) for every import statement anywhere in the tree."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package upwards
                parts = module.split(".") if is_package else module.split(".")[:-1]
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found += [(base, alias.name) for alias in node.names]
    return found


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports. ``from pkg import name`` goes to ``pkg.name`` when that
    is a module, else to the module ``pkg/__init__`` re-exports ``name`` from, else to ``pkg`` itself."""
    files = module_files(root, package)
    raw = {
        name: _imports(ast.parse(path.read_text()), name, path.name == "__init__.py")
        for name, path in files.items()
    }
    reexports = {
        name: {imported: source for source, imported in raw[name] if imported and source in files}
        for name, path in files.items()
        if path.name == "__init__.py"
    }
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, imports in raw.items():
        for source, imported in imports:
            if imported and f"{source}.{imported}" in files:
                target = f"{source}.{imported}"
            elif imported and imported in reexports.get(source, {}):
                target = reexports[source][imported]
            else:
                target = source
            while target not in files and "." in target:  # import a.b.c of a plain module a.b
                target = target.rsplit(".", 1)[0]
            if target in files and target != name:
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each import circle once, as a path that starts and ends at the same module (depth-first search)."""
    found, done = [], set()

    def visit(node: str, path: list[str], on_path: set[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in on_path:
                circle = path[path.index(nxt) :] + [nxt]
                if frozenset(circle) not in {frozenset(c) for c in found}:
                    found.append(circle)
            elif nxt not in done:
                on_path.add(nxt)
                visit(nxt, path + [nxt], on_path)
                on_path.discard(nxt)
        done.add(node)

    for start in sorted(graph):
        if start not in done:
            visit(start, [start], {start})
    return found


def layer_of(module: str, layers=LAYERS) -> tuple[int, str]:
    """(rank, the most specific layer entry matching ``module``); rank 0 is the top."""
    best = None
    for rank, (_, entries, _) in enumerate(layers):
        for entry in entries:
            if module == entry or module.startswith(entry + "."):
                if best is None or len(entry) > len(best[1]):
                    best = (rank, entry)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {Path(__file__).name}")
    return best


def layer_violations(graph: dict[str, set[str]], layers=LAYERS, facades=()) -> list[tuple[str, str, str]]:
    """(importer, imported, why) for imports that go up a layer, or across independent siblings of one
    layer. Package ``__init__`` modules (``facades``) only re-export, so they are not checked as importers."""
    out = []
    for module, targets in sorted(graph.items()):
        if module in facades:
            continue
        rank, entry = layer_of(module, layers)
        for target in sorted(targets):
            t_rank, t_entry = layer_of(target, layers)
            siblings_ok = layers[rank][2]
            if t_rank < rank or (t_rank == rank and t_entry != entry and not siblings_ok):
                out.append((module, target, f"{layers[rank][0]} imports {layers[t_rank][0]}"))
    return out


def facades_of(root: Path, package: str) -> set[str]:
    return {name for name, path in module_files(root, package).items() if path.name == "__init__.py"}


def test_selfbake_has_no_import_circle():
    graph = import_graph(SRC, "selfbake")
    assert "selfbake.baking.measure" in graph["selfbake.baking.command"]  # the walker sees the package
    assert cycles(graph) == []


def test_no_module_imports_a_layer_above_its_own():
    graph = import_graph(SRC, "selfbake")
    found = layer_violations(graph, facades=facades_of(SRC, "selfbake"))
    assert [v for v in found if v[:2] not in ALLOWED] == []


def test_the_models_package_imports_nothing_above_the_foundation():
    graph = import_graph(SRC, "selfbake")
    imported = {t for m, ts in graph.items() if m.startswith("selfbake.models") for t in ts}
    assert {t for t in imported if not t.startswith("selfbake.models")} <= {"selfbake.errors"}


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_the_checker_finds_a_circle_hidden_in_a_function(tmp_path):
    root = _package(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import f\n",
            "pkg/a.py": "from pkg import b\n\ndef f():\n    return b.g()\n",
            "pkg/b.py": "def g():\n    from pkg.c import h\n    return h()\n",
            "pkg/c.py": "def h():\n    from pkg.a import f\n    return f\n",
            "pkg/d.py": "from .c import h\n",
        },
    )
    graph = import_graph(root, "pkg")
    assert graph["pkg.d"] == {"pkg.c"}  # relative import resolved
    found = cycles(graph)
    assert len(found) == 1 and set(found[0]) == {"pkg.a", "pkg.b", "pkg.c"}


def test_the_checker_finds_an_upward_import_through_a_facade(tmp_path):
    root = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/top/__init__.py": "from pkg.top.run import main\n",
            "pkg/top/run.py": "from pkg.low import util\n\ndef main():\n    pass\n",
            "pkg/low/__init__.py": "",
            "pkg/low/util.py": "def up():\n    from pkg.top import main\n    return main\n",
        },
    )
    layers = [("top", ("pkg.top",), False), ("low", ("pkg.low", "pkg"), False)]
    graph = import_graph(root, "pkg")
    assert graph["pkg.low.util"] == {"pkg.top.run"}  # the facade's name resolved to its module
    found = layer_violations(graph, layers, facades_of(root, "pkg"))
    assert found == [("pkg.low.util", "pkg.top.run", "low imports top")]
