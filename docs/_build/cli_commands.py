"""The commands of the cachectl CLI as click commands, one attribute per command, for the
reference pages: each page's `::: mkdocs-typer2` block names one (`:name: warm`), so the page
is generated at build time from the same Typer app `cachectl warm --help` prints."""

from __future__ import annotations

from typer.main import get_command

from cachectl.cli.app import app

_root = get_command(app)

cachectl = _root
doctor = _root.commands["doctor"]
demo = _root.commands["demo"]
warm = _root.commands["warm"]
manifest = _root.commands["manifest"]
invalidate = _root.commands["invalidate"]
prune = _root.commands["prune"]
keys = _root.commands["keys"]
inspect = _root.commands["inspect"]
tags = _root.commands["tags"]
memory = _root.commands["memory"]
stats = _root.commands["stats"]
exporter = _root.commands["exporter"]
history = _root.commands["history"]
check = _root.commands["check"]
