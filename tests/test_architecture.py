"""The layout's rules, enforced: plain-Python cores import no Django, no import circles,
small modules.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "director"
PLAIN_CORES = [
    "director.stat",
    "director.selection",
    "director.snapshot",
    "director.routing",
    "director.geo",
    "director.presence",
    *sorted(
        f"director.remote.{path.stem}"
        for path in (PACKAGE / "remote").glob("*.py")
        if path.stem != "__init__"
    ),
    *sorted(
        f"director.trust.{path.stem}"
        for path in (PACKAGE / "trust").glob("*.py")
        if path.stem != "__init__"
    ),
    *sorted(
        f"director.wire.{path.stem}"
        for path in (PACKAGE / "wire").glob("*.py")
        if path.stem != "__init__"
    ),
]
MAX_MODULE_LINES = 500
MAX_TOP_LEVEL_MODULES = 20

# Run in a fresh interpreter in which "django" (and ninja, built on it) cannot be imported.
_NO_DJANGO = """
import importlib.abc, sys

class NoDjango(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("django", "ninja"):
            raise ImportError(f"plain core imported {name}")
        return None

sys.meta_path.insert(0, NoDjango())
from gevent import monkey
monkey.patch_all()
import importlib
for module in sys.argv[1:]:
    importlib.import_module(module)
print("ok")
"""


def test_the_plain_cores_import_without_django() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _NO_DJANGO, *PLAIN_CORES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_no_django_check_can_fail() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _NO_DJANGO, "director.models"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "plain core imported django" in done.stderr


def test_no_plain_core_imports_django_even_inside_a_function() -> None:
    """The subprocess check sees imports made at load time; this one sees every import
    statement of the cores' source (a lazy import in a function included)."""
    modules = _modules()
    offenders = []
    for name, path in modules.items():
        if not any(name == core or name.startswith(core + ".") for core in PLAIN_CORES):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [
                f"{name}: {imported}"
                for imported in names
                if imported.split(".")[0] in ("django", "ninja")
            ]
    assert offenders == []


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path for path in PACKAGE.rglob("*.py") if "migrations" not in path.parts
    }


def import_graph() -> dict[str, set[str]]:
    """Module -> the director modules it imports, anywhere in its body (a lazy import in a
    function is a dependency too)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # "from director import registry" imports director.registry.
                targets = [
                    f"{node.module}.{alias.name}"
                    if f"{node.module}.{alias.name}" in modules
                    else node.module
                    for alias in node.names
                ]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_a_module_that_imports_it_back() -> None:
    assert circles(import_graph()) == []


def package_of(module: str) -> str:
    """``director.ops.health`` -> ``director.ops``; a flat module is a package of its own."""
    return ".".join(module.split(".")[:2])


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Package -> the other director packages its modules import."""
    packages: dict[str, set[str]] = {}
    for module, imported in graph.items():
        source = package_of(module)
        packages.setdefault(source, set())
        for target in imported:
            packages.setdefault(package_of(target), set())
            if package_of(target) != source:
                packages[source].add(package_of(target))
    return packages


def test_no_package_imports_a_package_that_imports_it_back() -> None:
    """Layers point one way (STYLE.md 15): a cycle between packages means a lower layer
    reaches up, even where no two modules import each other."""
    assert circles(package_graph(import_graph())) == []


def test_the_package_check_sees_a_circle_made_of_modules_that_do_not_circle() -> None:
    modules = {"d.a.x": {"d.b.y"}, "d.b.y": set(), "d.b.z": {"d.a.w"}, "d.a.w": set()}
    assert circles(modules) == []
    assert circles(package_graph(modules)) == [["d.a", "d.b"]]


# The serving machinery sits below the domain: it may use the plain cores, nothing above.
SERVING_MAY_IMPORT = ("director.serving", "director.wire", "director.stat", "director.snapshot")


def test_the_serving_layer_imports_nothing_from_the_domain_or_above() -> None:
    reaching_up = sorted(
        f"{module} -> {target}"
        for module, imported in import_graph().items()
        if package_of(module) == "director.serving"
        for target in imported
        if package_of(target) not in SERVING_MAY_IMPORT
    )
    assert reaching_up == []


def test_the_circle_finder_finds_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", sorted(_modules()))
def test_no_module_is_over_500_lines(module: str) -> None:
    lines = len(_modules()[module].read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{module}: {lines} lines"


def test_director_has_at_most_20_top_level_modules_besides_its_packages() -> None:
    flat = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(flat) <= MAX_TOP_LEVEL_MODULES, flat
    packages = sorted(path.name for path in PACKAGE.iterdir() if (path / "__init__.py").exists())
    assert packages == [
        "admin",
        "console",
        "demo",
        "federation",
        "management",
        "migrations",
        "models",
        "ops",
        "remote",
        "routing",
        "serving",
        "snapshot",
        "stat",
        "trust",
        "wire",
    ]
