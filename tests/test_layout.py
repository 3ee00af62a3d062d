"""The package's shape: one installed namespace, three floors, no import running upward or in a circle."""

from __future__ import annotations

import ast
import csv
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Folder on disk -> installed package name (pyproject's package-dir mapping).
SOURCES = {"asic_reservoir": ROOT / "asic_reservoir", "asic_reservoir.drivers": ROOT / "drivers",
           "asic_reservoir.simulator": ROOT / "simulator"}
# Floors, lowest first: a module may import its own floor and the floors below it.
FLOORS = [
    ("drivers", "asic_reservoir.drivers"),
    ("simulator", "asic_reservoir.simulator"),
    ("science", "asic_reservoir.experiment", "asic_reservoir.analysis", "asic_reservoir.tpf",
     "asic_reservoir.puf", "asic_reservoir.progress", "asic_reservoir.blas"),
    ("command line", "asic_reservoir.cli", "asic_reservoir.__main__"),
]


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if package == "asic_reservoir" and parts and parts[0] in ("drivers", "simulator"):
                continue
            found[name] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules that ``name`` imports anywhere in its body (function-local included)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:      # 'pkg.mod.Name' -> 'pkg.mod'
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def floor(name: str) -> int:
    if name == "asic_reservoir":
        return len(FLOORS) - 1      # the public API re-exports from every floor (lazily)
    for level, (_, *prefixes) in enumerate(FLOORS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return level
    raise AssertionError(f"{name} belongs to no floor: add it to FLOORS")


def test_every_module_belongs_to_a_floor():
    mods = modules()
    assert "asic_reservoir.drivers.stratum.pool" in mods and "asic_reservoir.cli.main" in mods
    for name in mods:
        floor(name)


def test_no_import_runs_up_a_floor():
    mods = modules()
    upward = []
    for name, path in mods.items():
        for target in imports(name, path, set(mods)):
            if target != "asic_reservoir" and floor(target) > floor(name):  # root: test below
                upward.append(f"{name} ({FLOORS[floor(name)][0]}) imports {target} "
                              f"({FLOORS[floor(target)][0]})")
    assert not upward, "\n".join(upward)


def test_below_the_top_only_the_version_comes_from_the_package_root():
    """The root re-exports the public API from every floor; lower floors take only its version."""
    offenders = []
    for name, path in modules().items():
        if floor(name) == len(FLOORS) - 1:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "asic_reservoir" \
                    and [a.name for a in node.names] != ["__version__"]:
                offenders.append(name)
            if isinstance(node, ast.Import) and any(a.name == "asic_reservoir" for a in node.names):
                offenders.append(name)
    assert not offenders, offenders


def test_no_import_circles():
    mods = modules()
    graph = {name: imports(name, path, set(mods)) for name, path in mods.items()}
    # A package importing its own submodules (re-exports) is not a circle with them.
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_libraries_have_no_command_line():
    mods = modules()
    with_cli = [name for name, path in mods.items() if floor(name) < len(FLOORS) - 1
                and ("argparse" in path.read_text() or "sys.argv" in path.read_text())]
    assert not with_cli, with_cli


@pytest.mark.slow
def test_a_built_wheel_installs_only_the_asic_reservoir_namespace(tmp_path):
    """The wheel's RECORD lists what a non-editable install puts into site-packages."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, timeout=600)
    (wheel,) = tmp_path.glob("asic_reservoir-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        record = next(n for n in zf.namelist() if n.endswith(".dist-info/RECORD"))
        rows = list(csv.reader(io.StringIO(zf.read(record).decode())))
    top = {row[0].split("/")[0] for row in rows if row}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert top - dist_info == {"asic_reservoir"}, top
    files = {row[0] for row in rows if row}
    for expected in ("asic_reservoir/drivers/stratum/pool.py", "asic_reservoir/simulator/unit.py",
                     "asic_reservoir/cli/main.py", "asic_reservoir/analysis/readout.py"):
        assert expected in files
