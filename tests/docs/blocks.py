"""The fenced code blocks of the docs pages, and which of them the tests run.

A block is run when its title starts with `Tested` (```` ```sh title="Tested: purge user 123" ````),
so a reader sees which examples the test suite runs. `Tested (cluster):`, `(tls)`, `(acl)` and
`(replica)` and `(sentinel)` run the block against that kind of server instead of a single node. A block whose
title is a file name (```` ```yaml title="manifest.yaml" ````) is written to that file in the
page's working directory before the page's tested blocks run, in order, in that directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,})(?P<info>[^`]*)$")
_TITLE = re.compile(r'title="(?P<title>[^"]*)"')
_TESTED = re.compile(r"^Tested(?: \((?P<server>cluster|tls|acl|replica|sentinel)\))?:")
_FILE_NAME = re.compile(r"^[\w.-]+(?:/[\w.-]+)*\.\w+$")
RUNNABLE = {"sh", "bash", "python", "py"}


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    language: str
    title: str
    text: str

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

    def __str__(self) -> str:
        return f"docs/{self.page}:{self.line} ({self.title or self.language})"


def pages() -> list[str]:
    return sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md") if "_build" not in p.parts)


def blocks(page: str) -> list[Block]:
    found: list[Block] = []
    lines = (DOCS / page).read_text().split("\n")
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
