"""Hand-written YAML (config files, warm manifests) loaded with the place of every value.

These files are edited by people and read at bad moments, so a loader built on this module
reports every problem at once, each as `FILE:LINE:COL: field.path: what is wrong`, and an
unknown name comes with the nearest valid one.

`load_yaml` gives a `YamlDoc`: plain Python data plus the marks of every key and value.
`${VAR}` and `${VAR:-default}` in string values are filled from the environment. A `Problems`
collector gathers what validation finds and raises one error holding them all; a loader adds
to it the problems found while loading (`doc.problems`: all of them, or those that count).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from cachectl.errors import BadInputError, ConfigError, ManifestError
from cachectl.redact import scrub

DocPath = tuple[str | int, ...]

_MERGE_TAG = "tag:yaml.org,2002:merge"
# `$${` is a literal `${`; `${NAME}` and `${NAME:-default}` are variables.
_VARIABLE = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_VARIABLE_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


@dataclass(frozen=True)
class Mark:
    """A place in a file; line and column count from 1, as editors do."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Problem:
    mark: Mark | None
    path: DocPath
    message: str
    env_var: str | None = None  # set when the problem is an unset ${VAR}

    def __str__(self) -> str:
        where = f"{self.mark}: " if self.mark else ""
        name = f"{format_path(self.path)}: " if self.path else ""
        return f"{where}{name}{self.message}"


def format_path(path: Iterable[str | int]) -> str:
    """`("profiles", "prod", "timeout")` -> `profiles.prod.timeout`; indexes as `[2]`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def nearest(name: object, candidates: Iterable[str]) -> str | None:
    """The candidate closest to a misspelt `name`, or None when nothing is close."""
    by_lower = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(str(name).lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[match[0]] if match else None


@dataclass
class YamlDoc:
    """One loaded file: `data` as plain dicts, lists and scalars, and where each part sits."""

    file: str
    data: Any
    value_marks: dict[DocPath, Mark] = field(default_factory=dict)
    key_marks: dict[DocPath, Mark] = field(default_factory=dict)
    # Found while loading (duplicate keys, unset variables, unknown tags); the caller decides
    # which count, so an unset variable in a section nobody uses need not stop anything.
    problems: list[Problem] = field(default_factory=list)

    def get(self, path: Iterable[str | int], default: Any = None) -> Any:
        node = self.data
        for part in path:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return default
        return node

    def mark(self, path: Iterable[str | int], *, key: bool = False) -> Mark:
        """Where `path` is (its key with key=True); for a path not in the file, the nearest
        enclosing part that is, so "missing field" points at the mapping that lacks it."""
        path = tuple(path)
        if key and path in self.key_marks:
            return self.key_marks[path]
        while path not in self.value_marks and path:
            path = path[:-1]
        return self.value_marks.get(path, Mark(self.file, 1, 1))

    def where(self, path: Iterable[str | int], *, key: bool = False) -> str:
        return str(self.mark(path, key=key))


class Problems:
    """Collects what is wrong with a document so that all of it is reported in one error."""

    def __init__(self, doc: YamlDoc | None = None, kind: type[BadInputError] = ConfigError):
        self.doc = doc
        self.kind = kind
        self.items: list[Problem] = []

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Problem]:
        return iter(self.items)

    def add(self, path: Iterable[str | int], message: str, *, key: bool = False) -> None:
        """A problem at `path` in the document: at its key with key=True, else at its value."""
        path = tuple(path)
        mark = self.doc.mark(path, key=key) if self.doc else None
        self.items.append(Problem(mark, path, message))

    def note(self, message: str) -> None:
        """A problem that has no place in the document (a flag, an environment variable)."""
        self.items.append(Problem(None, (), message))

    def extend(self, problems: Iterable[Problem]) -> None:
        self.items.extend(problems)

    def mapping(self, path: Iterable[str | int], what: str = "a mapping") -> dict:
        """The mapping at `path`; anything else there is a problem and reads as empty."""
        path = tuple(path)
        value = self.doc.get(path) if self.doc else None
        if isinstance(value, dict):
            return value
        if value is not None:
            self.add(path, f"expected {what}, got {kind_of(value)}")
        return {}

    def unknown_keys(
        self,
        path: Iterable[str | int],
        mapping: Mapping,
        allowed: Iterable[str],
        what: str = "field",
    ) -> list:
        """Flags every key of `mapping` not in `allowed`, with the nearest valid name.
        Returns the unknown keys, so callers can skip them."""
        path, allowed = tuple(path), list(allowed)
        unknown = [k for k in mapping if k not in allowed]
        for name in unknown:
            guess = nearest(name, allowed)
            hint = f" (did you mean '{guess}'?)" if guess else ""
            self.add(path + (name,), f"unknown {what} '{name}'{hint}", key=True)
        return unknown

    def raise_if_any(
        self,
        subject: str,
        *,
        kind: type[BadInputError] | None = None,
        secrets: Iterable[str | None] = (),
    ) -> None:
        """Raises one error: its message is the only problem, or a count and the first;
        every problem is in `details["problems"]` (and `.problems` for a ManifestError).
        Known `secrets` are scrubbed from every line as a backstop."""
        if not self.items:
            return
        secrets = list(secrets)
        lines = [scrub(str(p), secrets) for p in self.items]
        if len(lines) == 1:
            message = lines[0]
        else:
            message = f"{subject}: {len(lines)} problems, the first: {lines[0]}"
        kind = kind or self.kind
        if issubclass(kind, ManifestError):
            raise kind(message, problems=lines)
        raise kind(message, details={"problems": lines})


def load_yaml(
    path: str | os.PathLike,
    *,
    env: Mapping[str, str] | None = None,
    kind: type[BadInputError] = ConfigError,
) -> YamlDoc:
    """Reads and parses a YAML file; see `parse_yaml`. An unreadable file raises `kind`."""
    file = os.fspath(path)
    try:
        with open(file, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise kind(f"{file}: cannot read: {exc.strerror or exc}") from None
    return parse_yaml(raw, file, env=env, kind=kind)


def parse_yaml(
    text: str | bytes,
    file: str = "<string>",
    *,
    env: Mapping[str, str] | None = None,
    kind: type[BadInputError] = ConfigError,
) -> YamlDoc:
    """Parses one YAML document with the safe loader, keeping the mark of every key and value.

    YAML that does not parse raises `kind` with one line `FILE:LINE:COL: problem`. Duplicate
    keys, unset variables (from `env`, default os.environ) and unknown tags are recorded in
    `doc.problems` for the caller to report with its own.
    """
    import yaml

    try:
        loader = yaml.SafeLoader(text)  # checks every character at once
    except yaml.reader.ReaderError as exc:
        # The reader counts characters of the decoded text.
        chars = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        line = chars.count("\n", 0, exc.position) + 1
        column = exc.position - (chars.rfind("\n", 0, exc.position) + 1) + 1
        character = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise kind(
            f"{file}:{line}:{column}: character U+{character:04X} is not allowed in YAML "
            "(a control character: write it as an escape in a double-quoted string)"
        ) from None
    try:
        node = loader.get_single_node()
        doc = YamlDoc(file, None)
        if node is not None:
            doc.data = _Walker(loader, doc, os.environ if env is None else env).value(node, ())
        return doc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "not valid YAML"
        if exc.context and exc.context_mark and exc.context_mark.line != mark.line:
            # An unclosed bracket or quote is noticed far from where it opened.
            problem += f" ({exc.context} on line {exc.context_mark.line + 1})"
        raise kind(f"{file}:{mark.line + 1}:{mark.column + 1}: {problem}") from None
    except yaml.YAMLError as exc:
        # Undecodable bytes: the reader's message already names the position.
        raise kind(f"{file}: {exc}") from None
    finally:
        loader.dispose()


def interpolate(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """`text` with `${VAR}` / `${VAR:-default}` filled from `env`, and the names that were
    unset with no default (a malformed `${...}` is listed whole). `${VAR:-default}` takes the
    default when VAR is unset or empty, as the shell does; `$${` is a literal `${`."""
    missing: list[str] = []

    def fill(m: re.Match) -> str:
        if m.group(0) == "$${":
            return "${"
        body = _VARIABLE_BODY.fullmatch(m.group(1))
        if body is None:
            missing.append(m.group(0))
            return ""
        name, default = body.groups()
        value = env.get(name)
        if default is not None and not value:
            return default
        if value is None:
            missing.append(name)
            return ""
        return value

    return _VARIABLE.sub(fill, text), missing


LONE_SURROGATE = (
    "a \\ud800-\\udfff escape that is not half of a surrogate pair is not text: write the "
    "character itself, or both halves of its pair"
)


def _joined_surrogates(text: str) -> str | None:
    """`text` with escaped surrogate pairs ("\\ud83d\\ude00", which YAML reads as two halves)
    made one character, as JavaScript reads them; None when a lone half remains."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    try:
        joined.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return joined


class _Walker:
    """Turns composed nodes into plain data, recording marks and problems on the way."""

    def __init__(self, loader: Any, doc: YamlDoc, env: Mapping[str, str]):
        self.loader = loader
        self.doc = doc
        self.env = env
        self.active: set[int] = set()  # nodes being walked, to stop on a recursive alias

    def mark(self, node: Any) -> Mark:
        return Mark(self.doc.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def problem(self, node: Any, path: DocPath, message: str, env_var: str | None = None) -> None:
        self.doc.problems.append(Problem(self.mark(node), path, message, env_var))

    def value(self, node: Any, path: DocPath) -> Any:
        self.doc.value_marks[path] = self.mark(node)
        if id(node) in self.active:
            self.problem(node, path, "an alias refers to itself")
            return None
        self.active.add(id(node))
        try:
            if node.id == "mapping":
                return self.mapping(node, path)
            if node.id == "sequence":
                return [self.value(item, path + (i,)) for i, item in enumerate(node.value)]
            return self.scalar(node, path)
        finally:
            self.active.discard(id(node))

    def scalar(self, node: Any, path: DocPath) -> Any:
        import yaml

        try:
            value = self.loader.construct_object(node)
        except yaml.constructor.ConstructorError as exc:
            self.problem(node, path, exc.problem or "cannot read this value")
            return None
        if not isinstance(value, str):
            return value
        value = _joined_surrogates(value)
        if value is None:
            self.problem(node, path, LONE_SURROGATE)
            return None
        value, missing = interpolate(value, self.env)
        for name in missing:
            if name.startswith("${"):
                self.problem(
                    node, path, f"malformed variable {name}: use ${{NAME}} or ${{NAME:-default}}"
                )
            else:
                self.problem(node, path, f"environment variable {name} is not set", env_var=name)
        return None if missing else value

    def mapping(self, node: Any, path: DocPath) -> dict:
        out: dict = {}
        for key_node, value_node, merged in self._pairs(node, path):
            if key_node.id != "scalar":
                self.problem(key_node, path, "a key must be a plain value, not a list or mapping")
                continue
            key = self.loader.construct_object(key_node)
            if isinstance(key, str):
                key = _joined_surrogates(key)
                if key is None:
                    self.problem(key_node, path, LONE_SURROGATE)
                    continue
            sub = path + (key,)
            if key in out:
                if not merged:  # a key given here overrides one merged in with `<<`
                    first = self.doc.key_marks[sub].line
                    self.problem(
                        key_node, sub, f"duplicate key '{key}' (first given on line {first})"
                    )
                continue
            self.doc.key_marks[sub] = self.mark(key_node)
            out[key] = self.value(value_node, sub)
        return out

    def _pairs(self, node: Any, path: DocPath) -> Iterator[tuple[Any, Any, bool]]:
        """The mapping's own (key, value) nodes, then those merged in with `<<: *anchor`."""
        sources = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                sources.extend(value_node.value if value_node.id == "sequence" else [value_node])
            else:
                yield key_node, value_node, False
        for source in sources:
            if source.id != "mapping":
                self.problem(source, path, "`<<` merges only mappings")
                continue
            for key_node, value_node, _ in self._pairs(source, path):
                yield key_node, value_node, True


def kind_of(value: Any) -> str:
    """How a wrong value reads in a problem: `the number 3`, `a list`, `'fast'`."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"'{value}'"
