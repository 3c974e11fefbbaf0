"""The fenced code blocks of the docs pages and the README, and which of them the tests run.

Every shell or Python block (an *example*: ```` ```sh ````, `bash`, `shell`, `console`,
`python`, `py`, `pycon`) either runs under the tests or says, where a reader sees it, why not:

- A block whose title starts with `Tested` (```` ```sh title="Tested: purge user 123" ````) runs.
  `Tested (cluster):`, `(tls)`, `(acl)`, `(replica)` and `(sentinel)` run it against that kind of server
  instead of a single node.
- A block whose title starts with `Not run:` and gives the reason
  (```` ```sh title="Not run: runs until Ctrl-C" ````) is shown, not run. MkDocs shows the title
  above the block; GitHub does not show titles, so a README block gives its reason as its first
  line instead (`# Not run: installs packages`).
- A block whose title is a file name (```` ```yaml title="manifest.yaml" ````) is written to
  that file in the page's working directory before the page's tested blocks run, in order, in
  that directory. A shell or Python block written so runs when a tested block of its page names
  the file (`import flask_app` names `flask_app.py`).

tests/docs/test_examples.py fails for an example that is none of these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,})(?P<info>[^`]*)$")
_TITLE = re.compile(r'title="(?P<title>[^"]*)"')
_TESTED = re.compile(r"^Tested(?: \((?P<server>cluster|tls|acl|replica|sentinel)\))?:")
# A reason is words, not a placeholder: at least two of them.
_NOT_RUN = re.compile(r"^(?:# )?Not run: (?P<reason>\S+ \S.*?)\s*$")
_FILE_NAME = re.compile(r"^[\w.-]+(?:/[\w.-]+)*\.\w+$")
RUNNABLE = {"sh", "bash", "shell", "python", "py"}
EXAMPLES = RUNNABLE | {"console", "pycon"}


@dataclass(frozen=True)
class Block:
    page: str  # the page's path from the repository's root: docs/recipes/x.md, README.md
    line: int
    language: str
    title: str
    text: str

    @property
    def example(self) -> bool:
        return self.language in EXAMPLES

    @property
    def tested(self) -> bool:
        return self.language in RUNNABLE and bool(_TESTED.match(self.title))

    @property
    def server(self) -> str:
        match = _TESTED.match(self.title)
        return (match and match["server"]) or "single"

    @property
    def file_name(self) -> str | None:
        return self.title if _FILE_NAME.match(self.title) else None

    @property
    def not_run_reason(self) -> str | None:
        """Why the block is not run, from its title or (a README block) its first line."""
        match = _NOT_RUN.match(self.title)
        if not match and self.page == "README.md":
            match = _NOT_RUN.match(self.text.split("\n", 1)[0])
        return match["reason"] if match else None

    def __str__(self) -> str:
        return f"{self.page}:{self.line} ({self.title or self.language})"


def pages() -> list[str]:
    """The docs pages and then README.md, as paths from the repository's root."""
    docs = sorted(str(p.relative_to(ROOT)) for p in DOCS.rglob("*.md") if "_build" not in p.parts)
    return [*docs, "README.md"]


def blocks(page: str) -> list[Block]:
    found: list[Block] = []
    lines = (ROOT / page).read_text().split("\n")
    at = 0
    while at < len(lines):
        opening = _FENCE.match(lines[at])
        if not opening or not opening["info"].strip():
            at += 1
            continue
        indent, fence, info = opening["indent"], opening["fence"], opening["info"].strip()
        body: list[str] = []
        end = at + 1
        while end < len(lines) and lines[end].strip() != fence:
            body.append(lines[end].removeprefix(indent))
            end += 1
        title = _TITLE.search(info)
        found.append(
            Block(
                page=page,
                line=at + 1,
                language=info.split()[0].lower(),
                title=title["title"] if title else "",
                text="\n".join(body) + "\n",
            )
        )
        at = end + 1
    return found
