"""The layering docs/design.md promises, read from the code: every import of every ssgen module
(at the top of a file or hidden inside a function alike) points down the picture's layers or
stays inside one package, and no imports close a circle.

The layer order is the picture's first column in docs/design.md, so the document and this test
cannot disagree: a row is a line of the picture that starts in its first column; its names
(`train/`, `checkpoint.py`, ...) are separated by two spaces, its description by three or more,
and a description goes on below, indented. A module belongs to the row of its top-level package
or file. Rules:

- an import may point down the rows, never up;
- in one row, different names import nothing of each other (a row is a set, not an order);
- inside one package, modules import each other in any direction that closes no circle.

Registries are the one known exception: each imports the package that fills it on its first
lookup (importlib, by the name written in registry.py), so that low layers name what high ones
define. Those imports are read from registry.py too, and allowed by name below.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ssgen"
DESIGN = ROOT / "docs" / "design.md"
ENTRY = re.compile(r"^(\w+/|\w+\.py)$")

# (importing module, imported module) pairs allowed although they point up, and why.
REGISTRY_HOMES = "a registry imports the package that fills it on its first lookup (registry.py)"
ALLOWED_UPWARD = {("ssgen.registry", home): REGISTRY_HOMES for home in (
    "ssgen.methods", "ssgen.tasks", "ssgen.data", "ssgen.nets", "ssgen.optim", "ssgen.eval.fid",
    "ssgen.eval.shapes_extractor")}


# ---------------------------------------------------------------- the picture
def picture_rows(text: str) -> list[list[str]]:
    """The names of each row of the first picture (the first fenced block), top row first."""
    block = text.split("```", 2)[1].split("\n", 1)[1]
    rows = []
    for line in block.splitlines():
        if not line.strip() or line[0].isspace():
            continue  # a description's next line
        names = re.split(r" {3,}", line.rstrip(), maxsplit=1)[0].split("  ")
        bad = [name for name in names if not ENTRY.match(name)]
        assert not bad, f"docs/design.md's picture: {bad} in the first column is not a package/ or module.py"
        rows.append(names)
    return rows


def layers() -> dict[str, int]:
    """picture name (`methods/`, `cli.py`) -> its row, counted from the bottom."""
    rows = picture_rows(DESIGN.read_text(encoding="utf-8"))
    found = {}
    for depth, row in enumerate(reversed(rows)):
        for name in row:
            assert name not in found, f"docs/design.md's picture names {name} twice"
            found[name] = depth
    return found


# ---------------------------------------------------------------- the code
def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def picture_name(module: str) -> str:
    """The picture's name for a module: its top-level package (`methods/`) or file (`cli.py`)."""
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__.py"
    return f"{parts[1]}/" if (PACKAGE / parts[1]).is_dir() else f"{parts[1]}.py"


def imports(module: str, path: Path, known: dict[str, Path]) -> list[tuple[int, str]]:
    """(line, imported ssgen module) of every import in the file, wherever it stands.
    `from ssgen.x import y` imports the module ssgen.x.y where there is one, else ssgen.x; the
    packages a dotted name passes through are not counted (each package's __init__ imports its
    own modules, so counting them would make every package a circle)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "ssgen"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "ssgen":
                continue
            for alias in node.names:
                found.append((node.lineno, f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base))
    if module == "ssgen.registry":
        found += registry_homes(tree)
    return sorted(set(found))


def registry_homes(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of each home module a registry is declared with: Registry("kind", "ssgen.x", ...)."""
    return [(node.lineno, arg.value) for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Registry"
            for arg in node.args[1:] if isinstance(arg, ast.Constant)]


def import_graph() -> dict[str, list[tuple[int, str]]]:
    known = modules()
    return {module: imports(module, path, known) for module, path in known.items()}


# ---------------------------------------------------------------- the tests
def test_the_picture_names_every_module_and_nothing_else():
    names = layers()
    wanted = {picture_name(module) for module in modules()}
    assert not wanted - names.keys(), f"docs/design.md's picture has no row for {sorted(wanted - names.keys())}"
    assert not names.keys() - wanted, f"docs/design.md's picture names {sorted(names.keys() - wanted)}, not in ssgen/"


def test_the_registries_homes_are_read():
    """The exception is read from registry.py, not assumed: its declared homes are the allowed ones."""
    homes = {("ssgen.registry", home) for _, home in registry_homes(ast.parse((PACKAGE / "registry.py").read_text()))}
    assert homes == ALLOWED_UPWARD.keys(), "registry.py's homes and ALLOWED_UPWARD differ"


def test_no_import_points_up_the_layers():
    names, known = layers(), modules()
    wrong = []
    for module, found in import_graph().items():
        here = picture_name(module)
        for line, target in found:
            assert target in known, f"{known[module].relative_to(ROOT)}:{line} imports {target}, which is not a module"
            there = picture_name(target)
            if here not in names or there not in names:
                continue  # a module the picture lacks: the test above names it
            depth, target_depth = names[here], names[there]
            upward = target_depth > depth or (target_depth == depth and there != here)
            if upward and (module, target) not in ALLOWED_UPWARD:
                side = "up to" if target_depth > depth else "across its row to"
                wrong.append(f"{known[module].relative_to(ROOT)}:{line}: {module} (layer {here}) imports {target}, "
                             f"{side} layer {there}")
    assert not wrong, "imports against docs/design.md's layers:\n" + "\n".join(wrong)


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle through each strongly connected part of `graph` that has one (Tarjan's, then a
    path back to its first module), each as [a, b, ..., a]."""
    index, low, stack, on_stack, parts = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            part = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                part.add(member)
                if member == node:
                    break
            if len(part) > 1 or node in graph[node]:
                parts.append(part)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [cycle_in(graph, part) for part in parts]


def cycle_in(graph: dict[str, set[str]], part: set[str]) -> list[str]:
    """A shortest way from the part's first module back to itself, inside the part."""
    start = min(part)
    paths, seen = [[start]], {start}
    while paths:
        path = paths.pop(0)
        for nxt in sorted(graph[path[-1]] & part):
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                paths.append(path + [nxt])
    raise AssertionError(f"no circle in {part}")


def test_no_imports_close_a_circle():
    graph = {module: {target for _, target in found if (module, target) not in ALLOWED_UPWARD}
             for module, found in import_graph().items()}
    found = circles(graph)
    assert not found, "import circles:\n" + "\n".join(" -> ".join(cycle) for cycle in found)


def test_the_checks_catch_what_they_are_for(tmp_path):
    """The pieces above on made-up input: a circle is found, and rows parse as the rules say."""
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert circles({"a": {"b"}, "b": set()}) == []
    rows = picture_rows("intro\n```\ncli.py  library.py    the commands\n                      more text\n"
                        "data/                 fid.py is a word here\n```\n")
    assert rows == [["cli.py", "library.py"], ["data/"]]
