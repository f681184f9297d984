"""The package's layers, read from its imports: no cycle, no import that climbs back up a layer,
and every import left inside a function says why it is there."""

from __future__ import annotations

import ast
from pathlib import Path

from skinlib import paths

PACKAGE = paths.PROJECT_ROOT / "skinlib"

# Bottom to top: a module may import its own layer and the layers below it, never one above.
LAYERS = [
    # foundation: errors, atomic files, where things live, progress bars, numbers as text
    ["skinlib", "skinlib.errors", "skinlib.io", "skinlib.paths", "skinlib.progress"],
    ["skinlib.formatting"],
    ["skinlib.config"],  # the run config's dataclasses and config.yaml
    ["skinlib.data"],  # dataset formats, images, splits, transforms, cache, SynthDerm, EDA
    # the study profile: names dataset formats (external sets), so it sits above the data
    ["skinlib.profile"],
    ["skinlib.evaluation"],  # functions of predictions and tables
    # run folders name and parse their files (predictions, thresholds, conformal sets: the
    # evaluation's formats), without torch
    ["skinlib.runs"],
    # architectures and the .pt format; loading a trained model asks the run folder where it is
    ["skinlib.models"],
    ["skinlib.training"],
    ["skinlib.inference"],  # TTA, ensembles, Grad-CAM with a trained model
    ["skinlib.external"],  # the overlap guard, external evaluation, what a set can say
    ["skinlib.thesis"],  # the generated methods, CLAIM, LaTeX tables, figures
    ["skinlib.study"],  # the notebooks' Study, the pipeline, its jobs, findings, doctor
    ["skinlib.app"],
    ["skinlib.commands", "skinlib.cli", "skinlib.__main__"],
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> int:
    """The index of the layer that owns ``module`` (its longest matching prefix)."""
    best, index = -1, None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            owns = module == prefix or (prefix != "skinlib" and module.startswith(prefix + "."))
            if owns and len(prefix) > best:
                best, index = len(prefix), i
    if index is None:
        raise AssertionError(f"{module} is in no layer of LAYERS: add it")
    return index


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]):
    """The skinlib modules an import statement loads."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            parts = module.split(".")[: None if is_package else -1]
            parts = parts[: len(parts) - node.level + 1]
            base = ".".join([*parts, *([base] if base else [])])
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    out = set()
    for name in names:
        while name not in known and "." in name:
            name = name.rsplit(".", 1)[0]
        if name in known and name != module:
            out.add(name)
    return out


def _imports() -> tuple[dict[str, set[str]], list[tuple[str, int, int]]]:
    """Module-level imports of every skinlib module, and where every function-level import is
    (module, first line, last line)."""
    modules = _modules()
    known = set(modules)
    top: dict[str, set[str]] = {}
    inner: list[tuple[str, int, int]] = []
    for name, path in modules.items():
        source = path.read_text()
        tree = ast.parse(source)
        top[name] = set()
        module_level = set()
        for stmt in tree.body:
            nodes = ast.walk(stmt) if isinstance(stmt, ast.If | ast.Try | ast.With) else [stmt]
            module_level |= {id(n) for n in nodes if not isinstance(n, ast.FunctionDef)}
        explained = _explained_by_the_import_above(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            if id(node) in module_level:
                if _type_checking_only(tree, node):
                    continue
                top[name] |= _imported(node, name, path.name == "__init__.py", known)
            elif id(node) not in explained:
                inner.append((name, node.lineno, node.end_lineno or node.lineno))
    return top, inner


def _type_checking_only(tree: ast.Module, node: ast.AST) -> bool:
    return any(
        isinstance(stmt, ast.If)
        and "TYPE_CHECKING" in ast.unparse(stmt.test)
        and any(n is node for n in ast.walk(stmt))
        for stmt in tree.body
    )


def _explained_by_the_import_above(tree: ast.Module) -> set[int]:
    """Imports that directly follow another import in the same block: the first one's comment
    gives the reason for the group."""
    out = set()
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if not isinstance(block, list):
                continue
            for before, stmt in zip(block, block[1:], strict=False):
                if isinstance(stmt, ast.Import | ast.ImportFrom) and isinstance(
                    before, ast.Import | ast.ImportFrom
                ):
                    out.add(id(stmt))
    return out


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph``, or None."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_every_module_has_a_layer():
    for module in _modules():
        _layer(module)


def test_no_import_cycle():
    top, _ = _imports()
    assert _cycle(top) is None, " -> ".join(_cycle(top))


def test_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_climbs_up_a_layer():
    top, _ = _imports()
    upward = [
        f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
        for module, targets in sorted(top.items())
        for target in sorted(targets)
        if _layer(target) > _layer(module)
    ]
    assert not upward, "\n".join(upward)


def test_no_upward_import_inside_functions_either():
    """A cycle hidden in a function body is still a cycle."""
    modules, upward = _modules(), []
    known = set(modules)
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _imported(node, name, path.name == "__init__.py", known):
                    if _layer(target) > _layer(name):
                        upward.append(f"{name}:{node.lineno} imports {target}")
    assert not upward, "\n".join(upward)


def test_function_level_imports_say_why():
    """An import inside a function (to keep torch out of a light command, an optional package
    out of the core) carries a comment with its reason: on its line or on the line above."""
    _, inner = _imports()
    assert inner, "the package has function-level imports; this test would check nothing"
    unexplained = []
    for module, first, last in inner:
        lines = _modules()[module].read_text().splitlines()
        statement = lines[first - 1 : last]
        above = lines[first - 2].strip() if first > 1 else ""
        if not (any("#" in s for s in statement) or above.startswith("#")):
            unexplained.append(f"{module}:{first}: {statement[0].strip()}")
    assert not unexplained, "\n".join(unexplained)
