"""The docs site's shape: a short README that links into docs/, and a reference page per command
whose options are generated from the command itself. `mkdocs build --strict` (in .ci/run) checks
every link and anchor inside the site; these checks need no mkdocs."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from cachectl.cli.app import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_the_readme_stays_short():
    assert len(README.splitlines()) <= 250


def test_every_relative_link_of_the_readme_names_a_file():
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    local = [t for t in targets if not t.startswith(("http://", "https://", "mailto:"))]
    assert local, "the README links into the docs"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert missing == []


def _cli_commands():
    spec = importlib.util.spec_from_file_location(
        "cli_commands", ROOT / "docs" / "_build" / "cli_commands.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_a_reference_page_generated_from_it(name):
    page = (ROOT / "docs" / "reference" / f"{name}.md").read_text()
    assert re.search(
        rf"^::: mkdocs-typer2\n    :module: cli_commands\n    :name: {name}\n", page, re.MULTILINE
    ), f"docs/reference/{name}.md has no generated options block for {name}"
    assert getattr(_cli_commands(), name).name == name
    nav = (ROOT / "mkdocs.yml").read_text()
    assert f"reference/{name}.md" in nav


def test_every_cachectl_environment_variable_is_in_the_configuration_page():
    names = set()
    for path in (ROOT / "cachectl").rglob("*.py"):
        names |= set(re.findall(r"\bCACHECTL_[A-Z][A-Z_]*[A-Z]\b", path.read_text()))
    page = (ROOT / "docs" / "reference" / "configuration.md").read_text()
    assert names, "the settings are read from CACHECTL_* variables"
    assert sorted(n for n in names if f"`{n}`" not in page) == []


def _table_fields(page: str, heading: str) -> set[str]:
    """The first column of the table under a `## heading` of the page."""
    section = page.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE))


def test_the_manifest_format_page_has_a_row_for_every_field_the_reader_knows():
    from cachectl.manifest.fields import DEFAULT_FIELDS, ENDPOINT_FIELDS

    page = (ROOT / "docs" / "reference" / "manifest-format.md").read_text()
    assert _table_fields(page, "`defaults`") == set(DEFAULT_FIELDS)
    assert _table_fields(page, "An endpoint") == set(ENDPOINT_FIELDS)
