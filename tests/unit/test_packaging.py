"""What the package promises about itself: the version written once, the lowest versions CI
tests being pyproject's floors, the typing marker and exports, the licence."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

import cachectl

ROOT = Path(__file__).resolve().parents[2]
tomllib = pytest.importorskip("tomllib")  # Python 3.11+; CI runs 3.11
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
PROJECT = PYPROJECT["project"]


def _name(requirement: str) -> str:
    """`redis[hiredis]>=7.3,<9` -> `redis` (lower case, as pip compares names)."""
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _floor(requirement: str) -> str | None:
    match = re.search(r">=\s*([0-9][^,;\s]*)", requirement)
    return match[1] if match else None


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text("utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[_name(name)] = version.strip()
    return pins


# --- the version -----------------------------------------------------------------------------


def test_the_version_is_written_once_in_the_package():
    assert "version" not in PROJECT and "version" in PROJECT.get("dynamic", [])
    dynamic = PYPROJECT["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "cachectl.__version__"}
    assert importlib.metadata.version("cachectl") == cachectl.__version__


def test_version_reads_no_metadata_and_loads_no_heavy_module():
    code = (
        "import sys\n"
        "sys.argv = ['cachectl', '--version']\n"
        "from cachectl.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = ('redis', 'yaml', 'aiohttp', 'rich', 'importlib.metadata')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.splitlines() == [f"cachectl {cachectl.__version__}", "[]"]


# --- the lowest versions ---------------------------------------------------------------------


def test_every_direct_dependency_has_a_floor_and_the_lowest_constraints_pin_it():
    floors = {_name(req): _floor(req) for req in PROJECT["dependencies"]}
    assert None not in floors.values(), floors
    assert _pins(ROOT / "constraints-lowest.txt") == floors


def test_hiredis_floor_is_one_redis_py_floor_accepts():
    """redis[hiredis] brings its own hiredis bound; ours must not sit below it."""
    floors = {_name(req): _floor(req) for req in PROJECT["dependencies"]}
    redis_meta = importlib.metadata.metadata("redis")
    if importlib.metadata.version("redis") != floors["redis"]:
        pytest.skip("checked in the lowest-versions venv, where redis is at its floor")
    wanted = [r for r in redis_meta.get_all("Requires-Dist") or [] if r.startswith("hiredis")]
    (bound,) = [_floor(r) for r in wanted]
    assert tuple(map(int, floors["hiredis"].split("."))) >= tuple(map(int, bound.split(".")))


# --- typing ----------------------------------------------------------------------------------


def test_the_package_is_marked_typed():
    assert (ROOT / "cachectl" / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["cachectl"]


def test_type_checkers_see_every_lazy_library_name():
    """cachectl/__init__.py loads the library on first use (__getattr__); a TYPE_CHECKING block
    imports the same names, so a type checker knows `cachectl.APICache`."""
    tree = ast.parse((ROOT / "cachectl" / "__init__.py").read_text("utf-8"))
    seen = set()
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom) and stmt.module == "cachectl.library":
                    seen |= {alias.asname or alias.name for alias in stmt.names}
    assert seen == set(cachectl._LIBRARY_NAMES)
    assert set(cachectl.__all__) == {"__version__", *cachectl._LIBRARY_NAMES}


def test_the_package_exports_exactly_the_library_names():
    """cachectl.__all__ is written out (importing the library to read its list would load
    Redis); it must name what cachectl.library exports, no more, no less."""
    import cachectl.library

    assert set(cachectl._LIBRARY_NAMES) == set(cachectl.library.__all__)
    assert all(
        getattr(cachectl, name) is getattr(cachectl.library, name)
        for name in cachectl._LIBRARY_NAMES
    )


# --- licence ---------------------------------------------------------------------------------


def test_the_licence_file_matches_pyproject():
    text = (ROOT / "LICENSE").read_text("utf-8")
    assert text.startswith("MIT License")
    assert re.search(r"^Copyright \(c\) \d{4} the cachectl developers$", text, re.MULTILINE)
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
