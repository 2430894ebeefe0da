"""The package layout shows the architecture, and stays so.

- No import cycle among miniclip's modules, except the one between autograd and ops (an op is a
  Function, and a Tensor's methods call the ops).
- The core (autograd, ops, nn, model, training) never imports the user-facing ``miniclip.api``
  (``load``), not even through another module.
- The README's layout section lists the files that exist, and every module of the flat packages.

The import graph is read from the source with ``ast`` (every import, also those inside functions):
module ``a`` -> module ``b`` when ``a`` imports ``b`` or a name from ``b``.
"""

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "miniclip"
CORE = ("miniclip.autograd", "miniclip.ops", "miniclip.nn", "miniclip.model", "miniclip.training")
ALLOWED_CYCLE = ("miniclip.autograd", "miniclip.ops")


def module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph():
    """{module: set of miniclip modules it imports}."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module
                # `from x import y`: y is a module of x, or a name defined in x; `from .. import _C`: a
                # compiled module (no .py file), not the package
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in files else source
                           for a in node.names if node.module or f"{source}.{a.name}" in files]
            else:
                continue
            edges.update(t for t in targets if t in files and t != name)
        graph[name] = edges
    return graph


def strongly_connected_components(graph):
    """Tarjan's algorithm, iterative (no recursion limit)."""
    index, low, on_stack, stack, components, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def _within(module, packages):
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_tarjan_finds_a_cycle_and_only_it():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    components = sorted(sorted(c) for c in strongly_connected_components(graph))
    assert components == [["a", "b", "c"], ["d"], ["e"]]


def test_the_graph_sees_relative_and_lazy_imports():
    graph = import_graph()
    assert "miniclip.training.step" in graph["miniclip.training.fit"]      # from .step import ...
    assert "miniclip.ops" in graph["miniclip.loss"]                        # from . import ops
    assert "miniclip.data" in graph["miniclip.training.run"]               # inside a function
    assert "miniclip.api" in graph["miniclip.evaluation.saved"]


def test_no_import_cycle_but_autograd_and_ops():
    cycles = [sorted(c) for c in strongly_connected_components(import_graph()) if len(c) > 1]
    bad = [c for c in cycles if not all(_within(m, ALLOWED_CYCLE) for m in c)]
    assert not bad, f"import cycles outside autograd <-> ops: {bad}"


def test_the_core_never_imports_the_user_facing_load():
    graph = import_graph()
    for start in (m for m in graph if _within(m, CORE)):
        parent, todo = {start: None}, [start]
        while todo:  # everything `start` imports, directly or through other modules
            node = todo.pop()
            for child in graph[node]:
                if child not in parent:
                    parent[child] = node
                    todo.append(child)
        if "miniclip.api" in parent:
            chain, node = [], "miniclip.api"
            while node is not None:
                chain.append(node)
                node = parent[node]
            raise AssertionError(f"{start} imports miniclip.api (load): {' -> '.join(reversed(chain))}")


def _readme_layout():
    """{folder: [names listed for it]} from the README's ``## Layout`` block."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"^## Layout\n+```\n(.*?)^```", text, re.S | re.M).group(1)
    listed, folder = {}, None
    for line in block.splitlines():
        if line and not line[0].isspace():
            folder = line.split()[0]  # a line that starts with a path names the folder it describes
            listed.setdefault(folder, [])
        listed[folder] += re.findall(r"\b([\w]+\.py)\b", line)
    return listed


def test_readme_layout_lists_what_exists():
    for folder, names in _readme_layout().items():
        assert (ROOT / folder).exists(), f"README layout: {folder} does not exist"
        if (ROOT / folder).is_dir():
            missing = [name for name in names if not (ROOT / folder / name).exists()]
            assert not missing, f"README layout: {folder} lists {missing}, which do not exist"


def test_readme_layout_lists_every_package_and_flat_module():
    listed = _readme_layout()
    packages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    for package in packages:
        assert f"miniclip/{package}/" in listed, f"README layout: miniclip/{package}/ is not listed"
    # the top level and the packages of several concerns list each module by name
    for folder in ("miniclip/", "miniclip/training/", "miniclip/evaluation/", "miniclip/tools/"):
        modules = sorted(p.name for p in (ROOT / folder).glob("*.py") if not p.name.startswith("__"))
        missing = [m for m in modules if m not in listed.get(folder, [])]
        assert not missing, f"README layout: {folder} does not list {missing}"
