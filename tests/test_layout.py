"""The package's layout: subpackages that follow the data, imports that point one way, the old paths deprecated."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import warnings
from collections import defaultdict
from pathlib import Path

import pytest

import mfirrn

PACKAGE = Path(mfirrn.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__.py``)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package modules it imports, at the top or inside functions (``from a import b`` counts as
    importing ``a.b`` when that is a module). Edges to a module's own ancestors are left out: Python imports a
    package before any of its submodules, whatever the code says."""

    def owner(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name if path.name == "__init__.py" else name.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                targets = {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else owner(base) for a in node.names}
            elif isinstance(node, ast.Import):
                targets = {owner(a.name) for a in node.names}
            else:
                continue
            graph[name] |= {t for t in targets if t.startswith("mfirrn") and t != name and not name.startswith(t + ".")}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_sees_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules():
    assert _cycles(_import_graph(_modules())) == []


def test_no_import_cycle_between_subpackages():
    def subpackage(name: str) -> str:
        return ".".join(name.split(".")[:2])

    graph: dict[str, set[str]] = defaultdict(set)
    for src, targets in _import_graph(_modules()).items():
        graph[subpackage(src)] |= {subpackage(t) for t in targets if subpackage(t) != subpackage(src)}
    graph.pop("mfirrn", None)  # the top level re-exports the facade; nothing imports it for code
    assert _cycles(graph) == []
    assert not any("mfirrn.cli" in targets for src, targets in graph.items()), "only the CLI may import the CLI"
    assert graph["mfirrn.io"] == set(), "io is the bottom layer"


def test_top_level_has_at_most_twelve_entries():
    entries = sorted(p.name for p in PACKAGE.iterdir()
                     if p.name not in ("__init__.py", "py.typed", "__pycache__") and not p.name.endswith(".so"))
    assert len(entries) <= 12, entries
    assert all((PACKAGE / e).is_dir() and (PACKAGE / e / "__init__.py").is_file() for e in entries), entries


def test_every_subpackage_says_in_one_line_what_lives_there():
    for init in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc, f"{init} has no docstring"
        first = doc.split("\n\n")[0]
        assert first.endswith(".") and len(first) <= 230, f"{init}: {first!r}"


@pytest.mark.parametrize("old", sorted(mfirrn.MOVED_MODULES))
def test_old_module_paths_import_with_a_deprecation_warning(old):
    code = (f"import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
            f"try:\n    import {old}\nexcept DeprecationWarning as w:\n    print(w)\nelse:\n    print('no warning')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # the first warning is that of the outermost old name (``mfirrn.commands`` for ``mfirrn.commands.outputs``)
    assert old.startswith(out.stdout.split(" is now mfirrn.")[0]) and " is now mfirrn." in out.stdout, out.stdout


def test_old_paths_give_the_objects_of_the_new_modules():
    with pytest.warns(DeprecationWarning, match="mfirrn.pipeline is now mfirrn.inference.pipeline"):
        pipeline = importlib.import_module("mfirrn.pipeline")
    assert pipeline.Reconstructor is mfirrn.Reconstructor
    with pytest.warns(DeprecationWarning):
        pose = importlib.import_module("mfirrn.pose")
    from mfirrn.evaluation.pose import pose_mae
    from mfirrn.geometry.pose import angles_from_rotation

    assert pose.pose_mae is pose_mae and pose.angles_from_rotation is angles_from_rotation
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old_report = mfirrn.report  # an attribute too, as when the flat modules were imported by ``import mfirrn``
    assert old_report.comparison_table is importlib.import_module("mfirrn.evaluation.report").comparison_table
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        mfirrn.nonsense  # noqa: B018
