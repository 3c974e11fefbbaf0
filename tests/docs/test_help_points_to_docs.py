"""`cachectl --help` and every command's help end with the docs page for it, and that page
exists: a person reading --help at 3 a.m. knows where the whole story is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from cachectl.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _commands(group, prefix: tuple[str, ...] = ()):
    ctx = typer.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        path = (*prefix, name)
        yield path
        if hasattr(cmd, "list_commands"):
            yield from _commands(cmd, path)


def _last_line(text: str) -> str:
    return [line for line in text.splitlines() if line.strip()][-1].strip()


@pytest.mark.parametrize("path", list(_commands(get_command(app))), ids=" ".join)
def test_a_commands_help_ends_with_its_reference_page(path):
    result = runner.invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    page = f"docs/reference/{path[0]}.md"
    assert _last_line(result.output) == f"Docs: {page}"
    assert (ROOT / page).is_file()


@pytest.mark.parametrize("argv", [["--help"], [], ["warm", "--help"]], ids=repr)
def test_the_installed_entry_point_prints_the_docs_page(argv):
    """main() builds the root from stand-ins and a command alone: both carry the page."""
    proc = subprocess.run(
        [sys.executable, "-m", "cachectl", *argv], capture_output=True, text=True, check=False
    )
    page = "docs/reference/warm.md" if "warm" in argv else "docs/index.md"
    shown = proc.stdout or proc.stderr  # with no arguments the help goes to stderr
    assert _last_line(shown) == f"Docs: {page}", shown
    assert (ROOT / page).is_file()


@pytest.mark.parametrize("path", list(_commands(get_command(app))), ids=" ".join)
def test_every_commands_help_through_the_entry_point_ends_with_its_page(path, monkeypatch, capsys):
    """What `cachectl CMD --help` runs: main() registers the command alone, not through `app`
    (the subprocess test above does this for warm; here every command, in-process)."""
    from cachectl.cli.app import main

    monkeypatch.setattr(sys, "argv", ["cachectl", *path, "--help"])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code in (0, None)
    assert _last_line(capsys.readouterr().out) == f"Docs: docs/reference/{path[0]}.md"
