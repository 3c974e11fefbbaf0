"""Hand-written YAML (config files, warm manifests) loaded with the place of every value.

These files are edited by people and read at bad moments, so a loader built on this module
reports every problem at once, each as `FILE:LINE:COL: field.path: what is wrong`, and an
unknown name comes with the nearest valid one.

`load_yaml` gives a `YamlDoc`: plain Python data plus the marks of every key and value.
Every file is read within `InputLimits` (size, values after alias expansion, nesting depth, and
for line-by-line files the length of a line), set by CACHECTL_MAX_* environment variables: a file
that passes one is refused with one line naming the limit and its setting, before it can take
memory or time without bound. Text is UTF-8 only, refused at the first byte that is not.
`${VAR}` and `${VAR:-default}` in string values are filled from the environment. A `Problems`
collector gathers what validation finds and raises one error holding them all; a loader adds
to it the problems found while loading (`doc.problems`: all of them, or those that count).
"""

from __future__ import annotations

import codecs
import difflib
import itertools
import json
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from cachectl.durations import format_size, parse_size
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
            part = shorten(str(part))
            if not part.isprintable():  # a newline in a key must not break the one-line error
                part = json.dumps(part)
            out += f".{part}" if out else part
    return out


SHOWN_CHARS = 80


def shorten(text: str) -> str:
    """`text` as a one-line problem quotes it: its first 80 characters and how long it is."""
    if len(text) <= SHOWN_CHARS:
        return text
    return f"{text[:SHOWN_CHARS]}… ({len(text)} characters)"


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
            guess = nearest(name, allowed) if len(str(name)) <= 2 * SHOWN_CHARS else None
            hint = f" (did you mean '{guess}'?)" if guess else ""
            self.add(path + (name,), f"unknown {what} '{shorten(str(name))}'{hint}", key=True)
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


# ---- limits on what a file may cost ------------------------------------------------------------


@dataclass(frozen=True)
class InputLimits:
    """What one input file may cost. Real configs and manifests are a few KiB: the defaults leave
    them far behind while keeping a hostile file under ~200 MB and a few seconds."""

    yaml_bytes: int = 4 * 1024 * 1024  # a YAML document's size
    yaml_nodes: int = 100_000  # values in a YAML document, each use of an alias counted in full
    yaml_depth: int = 100  # nesting of lists and mappings, counted through aliases
    # characters of text in a YAML document, each use of an alias counting every character of
    # what it refers to (0: four times yaml_bytes)
    yaml_chars: int = 0
    line_bytes: int = 64 * 1024  # one line of a file read line by line (a matrix file)
    key_check: int = 20_000_000  # keys a plan's duplicate-key check works out one by one

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> InputLimits:
        """The limits with the CACHECTL_MAX_* variables of `env` (default os.environ) applied;
        a value that is not a size of 1 or more raises ConfigError naming the variable."""
        env = os.environ if env is None else env
        values = {}
        for name, var in LIMIT_SETTINGS.items():
            raw = env.get(var)
            if not raw:
                continue
            try:
                value = parse_size(raw)
            except ValueError as exc:
                raise ConfigError(f"env {var}: {exc}") from None
            if value < 1:
                raise ConfigError(f"env {var}: expected 1 or more, got {raw!r}")
            values[name] = value
        return cls(**values)

    @property
    def text_chars(self) -> int:
        """The limit on the characters of text a YAML document expands to."""
        return self.yaml_chars or 4 * self.yaml_bytes


LIMIT_SETTINGS = {
    "yaml_bytes": "CACHECTL_MAX_YAML_BYTES",
    "yaml_nodes": "CACHECTL_MAX_YAML_NODES",
    "yaml_depth": "CACHECTL_MAX_YAML_DEPTH",
    "yaml_chars": "CACHECTL_MAX_YAML_CHARS",
    "line_bytes": "CACHECTL_MAX_LINE_BYTES",
    "key_check": "CACHECTL_MAX_KEY_CHECK",
}
_CHUNK = 64 * 1024
BOM = "\ufeff"


def open_input(file: str, kind: type[BadInputError], *, regular_only: bool = False):
    """`file` opened for reading bytes, after refusing what cannot be read as a file: a directory,
    a socket, a block device; with `regular_only`, anything but a regular file (a file read more
    than once, such as a matrix file, cannot be a device or a pipe)."""
    try:
        mode = os.stat(file).st_mode
    except OSError as exc:
        raise kind(f"{file}: cannot read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise kind(f"{file}: is a directory, not a file")
    readable = stat.S_ISREG(mode) or (
        not regular_only and (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode))
    )
    if not readable:
        what = "a regular file" if regular_only else "a file, a pipe or a character device"
        raise kind(f"{file}: not {what}: cachectl reads text files")
    try:
        if not stat.S_ISFIFO(mode):
            return open(file, "rb")
        # A named pipe is opened without waiting for a writer (a plain open would wait forever
        # for one that never comes), then read as usual: with no writer it reads as empty.
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except OSError as exc:
        raise kind(f"{file}: cannot read: {exc.strerror or exc}") from None


def read_input(file: str, kind: type[BadInputError], limits: InputLimits | None = None) -> bytes:
    """A whole YAML document, read in chunks and never past the size limit: refused (as `kind`)
    when it is larger, at the first NUL byte or the first byte that is not UTF-8."""
    limits = limits or InputLimits.from_env()
    limit = limits.yaml_bytes
    decoder = codecs.getincrementaldecoder("utf-8")()
    chunks: list[bytes] = []
    size = 0
    with open_input(file, kind) as fh:
        while size <= limit:
            try:
                chunk = fh.read(min(_CHUNK, limit + 1 - size))
            except OSError as exc:
                raise kind(f"{file}: cannot read: {exc.strerror or exc}") from None
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                break
            nul = chunk.find(b"\0")
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                check_utf8(b"".join(chunks), file, kind)
            if nul != -1:
                data = b"".join(chunks)
                _refuse_nul(data, size - len(chunk) + nul, file, kind)
    if size > limit:
        raise kind(
            f"{file}: larger than {format_size(limit)} ({limit} bytes), the limit for a YAML "
            f"document: raise it with {LIMIT_SETTINGS['yaml_bytes']}"
        )
    data = b"".join(chunks)
    check_utf8(data, file, kind)
    return data


def _line_and_column(data: bytes, offset: int) -> tuple[int, int]:
    line_start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", "replace")) + 1
    return data.count(b"\n", 0, offset) + 1, column


def check_utf8(data: bytes, file: str, kind: type[BadInputError], line_offset: int = 0) -> str:
    """`data` decoded; bytes that are not UTF-8 raise `kind` naming the first bad byte, its
    offset in the file and its line."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _line_and_column(data, exc.start)
        byte = data[exc.start]
        ending = " (the file ends inside a character)" if exc.end >= len(data) else ""
        raise kind(
            f"{file}:{line + line_offset}:{column}: not UTF-8: byte 0x{byte:02x} at offset "
            f"{exc.start}{ending}: cachectl reads UTF-8 text only"
        ) from None


def _refuse_nul(data: bytes, offset: int, file: str, kind: type[BadInputError]) -> None:
    line, column = _line_and_column(data, offset)
    raise kind(
        f"{file}:{line}:{column}: character U+0000 at offset {offset} is not allowed in YAML: "
        "this is not a text file"
    )


def read_lines(
    file: str, kind: type[BadInputError], limits: InputLimits | None = None
) -> Iterator[tuple[int, str]]:
    """(line number, text) for each line of a regular file, streamed: never holds more than one
    line, and a line longer than the limit, or not UTF-8, raises `kind` with the line number."""
    limits = limits or InputLimits.from_env()
    limit = limits.line_bytes
    offset = 0
    with open_input(file, kind, regular_only=True) as fh:
        for number in itertools.count(1):
            raw = fh.readline(limit + 1)
            if not raw:
                return
            if len(raw) > limit and not (len(raw) == limit + 1 and raw.endswith(b"\n")):
                raise kind(
                    f"{file}:{number}: a line longer than {format_size(limit)} ({limit} bytes), "
                    f"the limit for a line: raise it with {LIMIT_SETTINGS['line_bytes']}"
                )
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise kind(
                    f"{file}:{number}: not UTF-8: byte 0x{raw[exc.start]:02x} at offset "
                    f"{offset + exc.start}: cachectl reads UTF-8 text only"
                ) from None
            offset += len(raw)
            if number == 1:
                text = text.removeprefix(BOM)  # a UTF-8 byte order mark is not part of a value
            yield number, text


class _LimitPassed(Exception):
    """A document passed one of the limits while being composed; the message says which."""


def _limited_loader(limits: InputLimits, file: str):
    """A SafeLoader that counts, while it composes, every value the document holds, an alias
    counting the values of what it refers to (so a "billion laughs" file stops at the limit,
    long before it expands), and refuses nesting deeper than the limit (PyYAML's composer
    recurses once per level: a deep enough file would end in a RecursionError)."""
    import yaml

    class LimitedLoader(yaml.SafeLoader):
        def __init__(self, stream):
            super().__init__(stream)
            self._depth = 0
            self._nodes = 0
            self._chars = 0
            # per anchored node: (values, characters of text, levels of nesting) it holds
            self._sizes: dict[int, tuple[int, int, int]] = {}
            self._deepest = 0  # the deepest level reached, aliases expanded

        def _passed(self, event, message: str, setting: str) -> None:
            mark = event.start_mark
            raise _LimitPassed(
                f"{file}:{mark.line + 1}:{mark.column + 1}: {message}: raise it with {setting}"
            )

        def compose_node(self, parent, index):
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent):
                node = super().compose_node(parent, index)
                # Checked before anything is expanded: an alias brings all it refers to.
                values, chars, levels = self._sizes.get(id(node), (1, 0, 1))
                self._check_depth(event, self._depth + levels)
                self._count(event, values, alias=True)
                self._count_chars(event, chars, alias=True)
                return node
            self._depth += 1
            self._check_depth(event, self._depth)
            start, start_chars, outer_deepest = self._nodes, self._chars, self._deepest
            self._deepest = self._depth
            self._count(event, 1)
            if isinstance(event, yaml.ScalarEvent):
                self._count_chars(event, len(event.value))
            node = super().compose_node(parent, index)
            if getattr(event, "anchor", None) is not None:
                levels = self._deepest - self._depth + 1
                self._sizes[id(node)] = (self._nodes - start, self._chars - start_chars, levels)
            self._deepest = max(outer_deepest, self._deepest)
            self._depth -= 1
            return node

        def _check_depth(self, event, depth: int) -> None:
            self._deepest = max(self._deepest, depth)
            if depth > limits.yaml_depth:
                self._passed(
                    event,
                    f"nested more than {limits.yaml_depth} levels deep (aliases expanded), "
                    "the limit",
                    LIMIT_SETTINGS["yaml_depth"],
                )

        def _count_chars(self, event, chars: int, *, alias: bool = False) -> None:
            self._chars += chars
            limit = limits.text_chars
            if self._chars > limit:
                why = (
                    f"this alias brings the document to over {limit} characters of text (each "
                    "use of an alias counts every character it refers to), the limit"
                    if alias
                    else f"the document holds over {limit} characters of text, the limit"
                )
                self._passed(event, why, LIMIT_SETTINGS["yaml_chars"])

        def _count(self, event, size: int, *, alias: bool = False) -> None:
            self._nodes += size
            if self._nodes > limits.yaml_nodes:
                why = (
                    f"this alias brings the document to over {limits.yaml_nodes} values"
                    " (each use of an alias counts every value it refers to), the limit"
                    if alias
                    else f"the document holds over {limits.yaml_nodes} values, the limit"
                )
                self._passed(event, why, LIMIT_SETTINGS["yaml_nodes"])

    return LimitedLoader


def load_yaml(
    path: str | os.PathLike,
    *,
    env: Mapping[str, str] | None = None,
    kind: type[BadInputError] = ConfigError,
    limits: InputLimits | None = None,
) -> YamlDoc:
    """Reads and parses a YAML file within `limits` (default: from the environment); see
    `parse_yaml`. An unreadable file, or one past a limit, raises `kind`."""
    file = os.fspath(path)
    limits = limits or InputLimits.from_env()
    raw = read_input(file, kind, limits)
    return parse_yaml(raw, file, env=env, kind=kind, limits=limits)


def parse_yaml(
    text: str | bytes,
    file: str = "<string>",
    *,
    env: Mapping[str, str] | None = None,
    kind: type[BadInputError] = ConfigError,
    limits: InputLimits | None = None,
) -> YamlDoc:
    """Parses one YAML document with the safe loader, keeping the mark of every key and value.

    YAML that does not parse raises `kind` with one line `FILE:LINE:COL: problem`, as does a
    document past one of `limits` (default: from the environment) or bytes that are not UTF-8.
    Duplicate keys, unset variables (from `env`, default os.environ) and unknown tags are
    recorded in `doc.problems` for the caller to report with its own.
    """
    import yaml

    limits = limits or InputLimits.from_env()
    size = len(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    if size > limits.yaml_bytes:
        raise kind(
            f"{file}: larger than {format_size(limits.yaml_bytes)} ({limits.yaml_bytes} bytes), "
            f"the limit for a YAML document: raise it with {LIMIT_SETTINGS['yaml_bytes']}"
        )
    if isinstance(text, bytes):
        text = check_utf8(text, file, kind)
    try:
        loader = _limited_loader(limits, file)(text)  # checks every character at once
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
    except _LimitPassed as exc:
        raise kind(str(exc)) from None
    except RecursionError:
        # A last resort: the depth limit stops nesting long before Python's stack ends.
        raise kind(
            f"{file}: nested too deep to read: the depth limit, {limits.yaml_depth} levels, "
            f"is more than Python reads: lower {LIMIT_SETTINGS['yaml_depth']} (default 100)"
        ) from None
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
        loader.__dict__.clear()  # the composed nodes and marks go now, not at the next collection


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
        # A scalar used again through an alias is read once: its value and what was wrong.
        self.scalars: dict[int, tuple[Any, list[tuple[str, str | None]]]] = {}

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
        known = self.scalars.get(id(node))
        if known is None:
            known = self.scalars[id(node)] = self._read_scalar(node)
        value, problems = known
        for message, env_var in problems:
            self.problem(node, path, message, env_var)
        return value

    def _read_scalar(self, node: Any) -> tuple[Any, list[tuple[str, str | None]]]:
        """A scalar's value, and the problems found reading it (message, unset variable)."""
        import yaml

        try:
            value = self.loader.construct_object(node)
        except yaml.constructor.ConstructorError as exc:
            return None, [(exc.problem or "cannot read this value", None)]
        except (ValueError, OverflowError) as exc:
            return None, [(_unreadable(node, exc), None)]
        if not isinstance(value, str):
            return value, []
        value = _joined_surrogates(value)
        if value is None:
            return None, [(LONE_SURROGATE, None)]
        value, missing = interpolate(value, self.env)
        problems: list[tuple[str, str | None]] = []
        for name in missing:
            if name.startswith("${"):
                problems.append(
                    (f"malformed variable {name}: use ${{NAME}} or ${{NAME:-default}}", None)
                )
            else:
                problems.append((f"environment variable {name} is not set", name))
        return (None if missing else value), problems

    def mapping(self, node: Any, path: DocPath) -> dict:
        out: dict = {}
        for key_node, value_node, merged in self._pairs(node, path):
            if key_node.id != "scalar":
                self.problem(key_node, path, "a key must be a plain value, not a list or mapping")
                continue
            try:
                key = self.loader.construct_object(key_node)
            except Exception as exc:  # noqa: BLE001 -- a tag or number a key cannot be
                self.problem(key_node, path, _unreadable(key_node, exc))
                continue
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
                        key_node,
                        sub,
                        f"duplicate key '{shorten(str(key))}' (first given on line {first})",
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
    if isinstance(value, int) and abs(value) >= 10**30:
        return "a number of over 30 digits"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    # One line, of a sane length: a problem quotes a value, never spreads it over the terminal.
    text = str(value)
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    return f"'{text}'" if len(text) <= 80 else f"'{text[:77]}...'"


def _unreadable(node: Any, exc: BaseException) -> str:
    """Why a scalar cannot be read: a number with more digits than Python converts (4300), a
    date that is no date (2024-13-45), a key of a tag no key can be."""
    text = str(getattr(node, "value", ""))
    if "digits" in str(exc) or (len(text) > 100 and text.lstrip("+-").isdigit()):
        return (
            f"a number of {len(text)} digits is more than cachectl reads: put it in quotes to "
            "keep it as text"
        )
    if node.tag.endswith(":timestamp"):
        return f"{text[:40]!r} reads as a date that does not exist: put it in quotes"
    message = getattr(exc, "problem", None) or " ".join(str(exc).split())[:200]
    return f"cannot read this value: {message}"
