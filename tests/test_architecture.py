"""Guards on the layout (ARCHITECTURE.md): no UI in the library, no import cycle, no private cross-import, method names only in the registry."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from workbench.methods.registry import REGISTRY

REPO = Path(__file__).resolve().parent.parent
LIB = REPO / "workbench"


def _modules() -> dict[str, Path]:
    out = {}
    for path in LIB.rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(modules: dict[str, Path]) -> tuple[dict[str, set[str]], list[str]]:
    """Every import arrow between library modules (also inside functions and under TYPE_CHECKING), and the private names imported."""
    edges: dict[str, set[str]] = {m: set() for m in modules}
    private: list[str] = []
    for mod, path in modules.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[tuple[str, list[str]]] = []
            if isinstance(node, ast.Import):
                targets = [(a.name, []) for a in node.names if a.name.split(".")[0] == "workbench"]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] != "workbench":
                    continue
                names = [a.name for a in node.names]
                targets = [(f"{target}.{n}", []) for n in names if f"{target}.{n}" in modules]
                targets.append((target, [n for n in names if f"{target}.{n}" not in modules]))
            for target, names in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != mod:
                    edges[mod].add(target)
                    private += [f"{mod} imports {target}.{n}" for n in names if n.startswith("_") and not n.startswith("__")]
    return edges, private


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, except a package with its own children."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return [c for c in found if not all(m == c[0] or m.startswith(c[0] + ".") for m in c)]


def test_importing_every_library_module_pulls_in_no_ui():
    code = (
        "import importlib, pkgutil, sys, workbench\n"
        "for m in pkgutil.walk_packages(workbench.__path__, 'workbench.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] in ('streamlit', 'app_pages')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_no_import_cycle_among_library_modules():
    edges, _ = _imports(_modules())
    assert _cycles(edges) == []


def test_the_cycle_check_sees_a_cycle_hidden_in_a_function():
    edges = {"workbench.a": {"workbench.b"}, "workbench.b": {"workbench.a"}, "workbench.p": {"workbench.p.c"}, "workbench.p.c": {"workbench.p"}}
    assert _cycles(edges) == [["workbench.a", "workbench.b"]]  # a package importing its own child is not a design cycle


def test_no_module_imports_another_modules_private_names():
    _, private = _imports(_modules())
    assert private == []


def _name_literals(path: Path, names: set[str]) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [f"{path.name}:{n.lineno} {n.value!r}" for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in names]


def test_method_names_are_spelled_only_in_the_registry():
    """Library and app code refer to methods through workbench.methods.registry (its specs and constants), never by a literal.

    The bench harness (workbench/bench/) is tooling apart from the product and may name the prompts it measures.
    """
    names = set(REGISTRY)
    files = [p for p in LIB.rglob("*.py") if p != LIB / "methods" / "registry.py" and LIB / "bench" not in p.parents]
    files += [REPO / "app.py", *sorted((REPO / "app_pages").glob("*.py"))]
    found = [hit for p in files for hit in _name_literals(p, names)]
    assert found == []


def test_the_literal_check_finds_a_hard_coded_name(tmp_path):
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text('def wants_index(m):\n    return m in ("rag", "rag+lora")\n', encoding="utf-8")
    assert _name_literals(sneaky, set(REGISTRY)) == ["sneaky.py:2 'rag'", "sneaky.py:2 'rag+lora'"]
