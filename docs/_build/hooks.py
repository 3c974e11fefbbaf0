"""MkDocs hook for the command reference.

- Puts docs/_build on the import path, so each reference page's `::: mkdocs-typer2` block can
  name a command of `cli_commands` (the commands of the Typer app `cachectl` runs).
- Keeps mkdocs-typer2's generated HTML as it is: stashed raw, so other Markdown extensions
  (autorefs would read `[key]` in a usage line as a cross-reference) leave it alone, with the
  command's own `<h1>` dropped (the page has its title) and its sections one level down.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as etree
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)


def on_config(config, **kwargs):
    # mkdocs restores sys.path after loading a hook: add the folder when the build starts.
    if _HERE not in sys.path:
        sys.path.insert(0, _HERE)
    _stash_generated_html()
    return config


def _stash_generated_html() -> None:
    from mkdocs_typer2 import markdown as typer_markdown

    processor = typer_markdown.TyperProcessor
    if getattr(processor.run, "stashed", False):
        return
    original = processor.run

    def run(self, parent, blocks):
        holder = etree.Element("div")
        result = original(self, holder, blocks)
        html = "".join(etree.tostring(child, encoding="unicode", method="html") for child in holder)
        if "<table" not in html:
            raise RuntimeError("mkdocs-typer2 generated no option table for a command")
        html = re.sub(r"<h1>.*?</h1>", "", html, count=1, flags=re.DOTALL)
        html = re.sub(r"<(/?)h([2-5])>", lambda m: f"<{m[1]}h{int(m[2]) + 1}>", html)
        div = etree.SubElement(parent, "div")
        div.text = self.parser.md.htmlStash.store(html)
        return result

    run.stashed = True
    processor.run = run
