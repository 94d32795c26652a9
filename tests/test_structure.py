"""The shape of the code: no import cycle between tinyseg's modules, no file over 400 lines.

    python tests/test_structure.py               # the files, their lines, those over the limit, any cycle
    python tests/test_structure.py /tmp/old      # the same for another checkout (git worktree, git archive)
    python -m pytest tests/test_structure.py     # the same, as tests

MiniTorch's files are 100 to 400 lines, one sitting each, and a reader who
follows a call from the CLI down to the matrix multiply should never walk
back up the way they came. These tests hold tinyseg to both.

How the imports are read. Every module under tinyseg/ is parsed with `ast`
(nothing is imported, so nothing runs). Every `import` and `from ... import`
counts, at the top of a file or inside a function: an import put inside a
function to dodge a cycle is still a dependency, it only moves the cycle
from import time to run time. Each imported name is followed to the module
that defines it:

    from tinyseg.data.loader import DataLoader       -> tinyseg.data.loader
    from tinyseg import backend                      -> tinyseg.backend (a module of the package)
    from tinyseg.complexity import receptive_field   -> tinyseg.complexity.receptive_fields
    import tinyseg.functional as F; F.conv2d(...)     -> tinyseg.functional.conv

A package's __init__.py that only re-exports is not a node of its own:
its `from tinyseg.x.y import name` lines are read as a table of where each
name lives (the third line above), and `F.conv2d` is looked up in that
table too. Counting the __init__ as a module would make every two modules
of one package that both import from it look like a cycle, although
neither imports the other. A name an __init__ defines itself (models'
build_model) makes the __init__ a node, with its own imports as its edges.
Imports are absolute, as everywhere in tinyseg; a relative one fails the
test rather than going unseen.
"""

from __future__ import annotations

import ast
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKED = ("tinyseg", "benchmarks")       # folders whose files must stay within MOST_LINES
MOST_LINES = 400


# ----------------------------------------------------------------- reading the files
def python_files(folder: str, root: str = ROOT) -> list[str]:
    """Every .py file under root/folder, as a path relative to root, sorted."""
    found = []
    for directory, _, names in os.walk(os.path.join(root, folder)):
        found += [os.path.relpath(os.path.join(directory, n), root) for n in names if n.endswith(".py")]
    return sorted(found)


def line_count(path: str, root: str = ROOT) -> int:
    with open(os.path.join(root, path), encoding="utf-8") as file:
        return sum(1 for _ in file)


def module_name(path: str) -> str:
    """tinyseg/data/loader.py -> tinyseg.data.loader; tinyseg/data/__init__.py -> tinyseg.data."""
    name = path[:-3].replace(os.sep, ".")
    return name[:-len(".__init__")] if name.endswith(".__init__") else name


def parse(path: str, root: str = ROOT) -> ast.Module:
    with open(os.path.join(root, path), encoding="utf-8") as file:
        return ast.parse(file.read(), path)


class Package:
    """The modules of a package (tinyseg), each parsed, and where each re-exported name lives."""

    def __init__(self, top: str = "tinyseg", root: str = ROOT):
        files = python_files(top, root)
        self.trees = {module_name(p): parse(p, root) for p in files}
        self.packages = {module_name(p) for p in files if p.endswith("__init__.py")}
        self.top = top

    def defines(self, package: str, name: str) -> bool:
        """Whether a package's __init__ defines `name` itself (a def, class or assignment)."""
        for node in self.trees[package].body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
                return True
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name
                                                    for t in node.targets):
                return True
        return False

    def home(self, package: str, name: str, seen=frozenset()) -> set[str]:
        """The modules that `from package import name` depends on: where the name is defined."""
        if f"{package}.{name}" in self.trees:                          # a module of the package
            return self.resolve_module(f"{package}.{name}")
        if self.defines(package, name) or package in seen:
            return {package}
        for node in self.trees[package].body:                          # a re-export: follow it
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    if (alias.asname or alias.name) == name:
                        return self.from_import(node.module, alias.name, seen | {package})
        return {package}

    def from_import(self, module: str, name: str, seen=frozenset()) -> set[str]:
        if module in self.packages:
            return self.home(module, name, seen)
        return {module} if module in self.trees else set()

    def resolve_module(self, module: str) -> set[str]:
        """A plain module is itself; a package stands for nothing until a name is taken from it."""
        return set() if module in self.packages else {module}

    def imports(self, module: str) -> set[str]:
        """The modules of this package that `module` depends on, each followed to its home."""
        tree, found = self.trees[module], set()
        aliases = {}                                                    # F -> tinyseg.functional
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and self.inside(node.module):
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    if target in self.packages:
                        aliases[alias.asname or alias.name] = target
                    else:
                        found |= self.from_import(node.module, alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if not self.inside(alias.name):
                        continue
                    if alias.name in self.packages:
                        aliases[alias.asname or alias.name] = alias.name
                    else:
                        found |= self.resolve_module(alias.name)
        for node in ast.walk(tree):                                     # F.conv2d -> its home
            dotted = attribute_path(node)
            if dotted:
                for alias, package in aliases.items():
                    if dotted.startswith(alias + "."):
                        found |= self.dotted_home(package, dotted[len(alias) + 1:].split("."))
        found.discard(module)
        return found

    def inside(self, module: str | None) -> bool:
        """Whether an absolute import names this package or one of its modules."""
        return module is not None and (module == self.top or module.startswith(self.top + "."))

    def relative_imports(self) -> list[str]:
        """`from . import x` lines (module: line), which `imports` does not follow: there are none."""
        return [f"{module}: {node.lineno}" for module, tree in self.trees.items()
                for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level]

    def dotted_home(self, package: str, parts: list) -> set[str]:
        """tinyseg + [functional, conv2d] -> tinyseg.functional.conv: walk down the packages."""
        while len(parts) > 1 and f"{package}.{parts[0]}" in self.packages:
            package, parts = f"{package}.{parts[0]}", parts[1:]
        return self.home(package, parts[0])

    def graph(self) -> dict[str, set[str]]:
        """module -> the modules it imports; a re-exporting __init__ only where it defines a name."""
        nodes = {m for m in self.trees if m not in self.packages or self.defines_anything(m)}
        return {m: self.imports(m) & nodes for m in sorted(nodes)}

    def defines_anything(self, package: str) -> bool:
        return any(isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Assign))
                   and not (isinstance(n, ast.Assign) and all(isinstance(t, ast.Name) and t.id == "__all__"
                                                              for t in n.targets))
                   for n in self.trees[package].body)


def attribute_path(node) -> str | None:
    """"F.conv2d" for the expression F.conv2d (the outermost attribute of a chain only)."""
    if not isinstance(node, ast.Attribute):
        return None
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id] + parts[::-1]) if isinstance(node, ast.Name) else None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: each strongly connected set of two or more modules (Tarjan), sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]                 # iterative: no recursion limit
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        found.append(sorted(group))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return sorted(found)


def long_files(root: str = ROOT) -> dict[str, int]:
    """Files of tinyseg/ and benchmarks/ over MOST_LINES lines, with their line counts."""
    counts = {p: line_count(p, root) for folder in CHECKED for p in python_files(folder, root)}
    return {p: n for p, n in counts.items() if n > MOST_LINES}


# ----------------------------------------------------------------- the tests
def test_no_module_of_tinyseg_imports_one_that_imports_it_back():
    package = Package()
    assert not package.relative_imports(), "write these imports absolutely, as the rest of tinyseg does"
    found = cycles(package.graph())
    assert not found, "import cycles (each group imports itself through the others): " + "; ".join(
        " <-> ".join(group) for group in found)


def test_no_file_is_over_400_lines():
    assert not long_files(), f"files over {MOST_LINES} lines: {long_files()}"


def test_the_cycle_finder_finds_a_lazy_import_and_sees_through_a_re_export(tmp_path):
    """Two modules that import each other, one inside a function, are a cycle; two modules of
    a package that take each other's names from its __init__, one way, are not."""
    files = {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import helper\n",
        "pkg/b.py": "def helper():\n    from pkg import a\n",                 # lazy, still a cycle
        "pkg/sub/__init__.py": "from pkg.sub.x import X\nfrom pkg.sub.y import Y\n",
        "pkg/sub/x.py": "from pkg.sub import Y\nX = Y\n",                      # x -> y, not x -> sub -> x
        "pkg/sub/y.py": "Y = 1\n",
        "pkg/c.py": "import pkg.sub as S\nZ = S.X\n",                         # S.X lives in x
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = Package("pkg", str(tmp_path)).graph()
    assert graph == {"pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}, "pkg.c": {"pkg.sub.x"},
                     "pkg.sub.x": {"pkg.sub.y"}, "pkg.sub.y": set()}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# ----------------------------------------------------------------- as a script
def main(root: str = ROOT) -> None:
    """Print the shape of the checkout at `root`: files and lines, those over the limit, cycles."""
    package = Package(root=root)
    graph = package.graph()
    files = [p for folder in CHECKED for p in python_files(folder, root)]
    total = sum(line_count(p, root) for p in files)
    print(f"{len(files)} files in {' and '.join(f + '/' for f in CHECKED)}, {total} lines; "
          f"{len(graph)} modules of tinyseg, {sum(map(len, graph.values()))} imports between them")
    print(f"over {MOST_LINES} lines:", ", ".join(f"{p} ({n})" for p, n in long_files(root).items()) or "none")
    found = cycles(graph)
    print("import cycles:", "; ".join(" <-> ".join(group) for group in found) or "none")


if __name__ == "__main__":
    main(*sys.argv[1:2])        # python tests/test_structure.py [ROOT]: another checkout, e.g. an older one
