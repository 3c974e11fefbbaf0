"""Reading a manifest: load the YAML, check every part of it, report every problem at once
(`FILE:LINE:COL: endpoints[2].ttl: ...`), and build the Manifest."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cachectl.errors import ManifestError
from cachectl.layout import js_stringify
from cachectl.manifest import fields
from cachectl.manifest.credentials import _texts_in, is_secret_param
from cachectl.manifest.model import (
    FILE_VALUE_KINDS,
    MANIFEST_VERSION,
    MAX_RANGE_VALUE,
    Defaults,
    Endpoint,
    FileValues,
    ListValues,
    Manifest,
    RangeValues,
    Source,
    file_value,
)
from cachectl.manifest.templates import Template
from cachectl.manifest.urls import (
    _query_secrets,
    _split,
    _tail_problem,
    _url_problem,
    mask_query_secrets,
)
from cachectl.redact import is_secret_header
from cachectl.yamlsrc import (
    DocPath,
    InputLimits,
    Problems,
    YamlDoc,
    kind_of,
    load_yaml,
    nearest,
    read_lines,
)

TOP_FIELDS = ("version", "defaults", "endpoints")
SOURCE_FIELDS = ("range", "file", "as")


# ---- loading ----------------------------------------------------------------------------------


def load_manifests(
    paths: Iterable[str | os.PathLike], env: Mapping[str, str] | None = None
) -> list[Manifest]:
    """Every manifest, or one ManifestError listing every problem of every file."""
    paths = list(paths)
    manifests, problems = [], []
    for path in paths:
        try:
            manifest = load_manifest(path, env)
        except ManifestError as exc:
            problems.extend(exc.problems or [exc.message])
        else:
            manifests.append(manifest)
    if problems:
        subject = "the manifests" if len(paths) > 1 else os.fspath(paths[0])
        message = (
            problems[0]
            if len(problems) == 1
            else (f"{subject}: {len(problems)} problems, the first: {problems[0]}")
        )
        raise ManifestError(message, problems=problems)
    return manifests


def load_manifest(
    path: str | os.PathLike,
    env: Mapping[str, str] | None = None,
    limits: InputLimits | None = None,
) -> Manifest:
    """One manifest, checked whole; a ManifestError lists every problem found. The file and its
    matrix files are read within `limits` (default: from the environment, CACHECTL_MAX_*)."""
    env = os.environ if env is None else env
    limits = limits or InputLimits.from_env(env)
    doc = load_yaml(path, env=env, kind=ManifestError, limits=limits)
    return _Reader(doc, limits).read()


class _Reader:
    """Reads one loaded document into a Manifest, collecting every problem on the way."""

    def __init__(self, doc: YamlDoc, limits: InputLimits | None = None):
        self.doc = doc
        self.limits = limits or InputLimits()
        self.problems = Problems(doc, kind=ManifestError)
        self.problems.extend(doc.problems)
        # Values left empty by an unset ${VAR}: already reported, not reported again.
        self.unset = {p.path for p in doc.problems if p.env_var}
        self.here = Path(doc.file).resolve().parent
        self.secrets: list[str] = []
        self.secret_sources: dict[str, str] = {}  # a secret -> what carries it, for problems
        # Text that goes into a key or a key name (param values, tag and dependency names, the
        # endpoint's name): checked for known secrets once every secret of the file is known.
        self.key_texts: list[tuple[DocPath, str, str]] = []  # (where, text, what it is)
        self.defaults_given: set = set()

    def add(self, path: DocPath, message: str, *, key: bool = False) -> None:
        self.problems.add(path, message, key=key)

    def read(self) -> Manifest:
        top = self.doc.data
        if top is None:
            self.add((), "the manifest is empty: expected version: 1, defaults and endpoints")
            self.problems.raise_if_any(self.doc.file)
        if not isinstance(top, dict):
            self.add(
                (), f"expected a mapping with version, defaults and endpoints, got {kind_of(top)}"
            )
            self.problems.raise_if_any(self.doc.file)
        self.problems.unknown_keys((), top, TOP_FIELDS)
        self._version(top)
        defaults = self._defaults(top.get("defaults"))
        endpoints = self._endpoints(top.get("endpoints"), defaults)
        self._no_secrets_in_keys()
        self.problems.items.sort(key=lambda p: (p.mark.line, p.mark.column) if p.mark else (0, 0))
        self.problems.raise_if_any(self.doc.file, secrets=self.secrets)
        secrets = tuple(dict.fromkeys(s for s in self.secrets if s))
        masked = tuple(sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True))
        return Manifest(
            file=self.doc.file,
            defaults=Defaults(
                concurrency=defaults.get("concurrency"),
                concurrency_per_host=defaults.get("concurrency_per_host"),
                rate=defaults.get("rate"),
            ),
            endpoints=tuple(replace(e, secrets=masked) for e in endpoints),
            secrets=secrets,
        )

    def _secret(self, value: str | None, source: str) -> None:
        if value:
            self.secrets.append(value)
            self.secret_sources.setdefault(value, source)

    def _no_secrets_in_keys(self) -> None:
        """A problem for every param value, tag, dependency or endpoint name that holds a secret
        of this file (`id: ${TOKEN}` with `Authorization: Bearer ${TOKEN}`): keys, tag and
        dependency sets are Redis keys, stored in the write log and shown by expand and the
        report. The value is never echoed, only what carries it."""
        secrets = sorted((s for s in self.secret_sources if len(s) >= 4), key=len, reverse=True)
        if not secrets:
            return
        reported: set[DocPath] = set()
        for path, text, what in self.key_texts:
            found = next((s for s in secrets if s in text), None)
            if found is None or path in reported:
                continue
            reported.add(path)
            carrier = self.secret_sources[found]
            if what.startswith("param"):
                self.add(
                    path,
                    f"{what} holds a credential (the value of {carrier}), and every param is part "
                    "of the entry key: send it as a header only (headers never enter a key)",
                )
            else:
                self.add(
                    path,
                    f"{what} holds a credential (the value of {carrier}): it would be part of a "
                    "Redis key name, stored and shown; keep credentials to headers",
                )

    def _version(self, top: dict) -> None:
        if "version" not in top:
            self.add((), f"missing field 'version' (write version: {MANIFEST_VERSION} at the top)")
        elif top["version"] != MANIFEST_VERSION or isinstance(top["version"], bool):
            self.add(
                ("version",),
                f"unsupported version {kind_of(top['version'])}: "
                f"this cachectl reads version {MANIFEST_VERSION}",
            )

    # -- defaults ----------------------------------------------------------------------------

    def _defaults(self, raw: Any) -> dict[str, Any]:
        path: DocPath = ("defaults",)
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.add(path, f"expected a mapping of default settings, got {kind_of(raw)}")
            return {}
        self.problems.unknown_keys(path, raw, fields.DEFAULT_FIELDS)
        self.defaults_given = set(raw)
        out: dict[str, Any] = {}
        if "base_url" in raw:
            base = fields.text(self, path + ("base_url",), raw["base_url"])
            if base is not None:
                parts = _split(base)
                if parts is None:
                    self.add(path + ("base_url",), _url_problem(base) or "this URL cannot be read")
                elif parts.scheme not in ("http", "https") or not parts.netloc:
                    self.add(
                        path + ("base_url",), f"expected an http:// or https:// URL, got {base!r}"
                    )
                else:
                    self._secret(parts.password, "the password in defaults.base_url")
                    for value in _query_secrets(base):
                        self._secret(value, "a secret query value in defaults.base_url")
                    problem = _url_problem(base, self.secrets)
                    if problem:
                        self.add(path + ("base_url",), problem)
                        # Kept: each endpoint's own part is still checked, its host is not.
                    out["base_url"] = base
        for f in fields.CHECKED_FIELDS:
            if f.in_defaults and f.name in raw and path + (f.name,) not in self.unset:
                value = f.check(self, path + (f.name,), raw[f.name])
                if value is not None:
                    out[f.name] = value
        for header, value in out.get("headers", {}).items():
            if is_secret_header(header):
                self._secret_header_value(header, value)
        return out

    def _secret_header_value(self, header: str, value: str) -> None:
        # `Bearer abc...`: the credential alone can show up in an error, without its scheme.
        source = f"the {header} header"
        self._secret(value, source)
        credential = value.partition(" ")[2]
        if credential.strip():
            self._secret(credential.strip(), source)

    # -- endpoints ---------------------------------------------------------------------------

    def _endpoints(self, raw: Any, defaults: dict[str, Any]) -> list[Endpoint]:
        path: DocPath = ("endpoints",)
        if raw is None:
            self.add(path, "missing field 'endpoints' (a list of endpoints to warm)")
            return []
        if not isinstance(raw, list):
            self.add(path, f"expected a list of endpoints, got {kind_of(raw)}")
            return []
        if not raw:
            self.add(path, "the list of endpoints is empty: nothing to warm")
        out = []
        for i, item in enumerate(raw):
            endpoint = self._endpoint(path + (i,), i, item, defaults)
            if endpoint is not None:
                out.append(endpoint)
        return out

    def _endpoint(self, path: DocPath, index: int, raw: Any, defaults: dict) -> Endpoint | None:
        if not isinstance(raw, dict):
            self.add(
                path, f"expected an endpoint (a mapping with name, url, ttl...), got {kind_of(raw)}"
            )
            return None
        before = len(self.problems)
        self.problems.unknown_keys(path, raw, fields.ENDPOINT_FIELDS)

        def get(name: str, reader, fallback=None):
            if name in raw:
                if path + (name,) in self.unset:
                    return None
                return reader(path + (name,), raw[name])
            return defaults.get(name, fallback)

        name = self._required_text(path, raw, "name")
        if name is not None:
            self.key_texts.append((path + ("name",), name, "the endpoint name"))
        # The fields a check reads alone (fields.FIELDS): the endpoint's value, else defaults',
        # else the field's default; one an unset ${VAR} left empty takes the field's default.
        values: dict[str, Any] = {}
        for f in fields.CHECKED_FIELDS:
            if f.in_endpoint:
                value = get(f.name, lambda p, v, check=f.check: check(self, p, v), f.default)
                values[f.name] = f.default if value is None else value
        method = values["method"]
        params = get("params", self._params, {}) or {}
        matrix = get("matrix", self._matrix, ()) or ()
        for param, _ in matrix:
            if param in params:
                self.add(
                    path + ("matrix", param),
                    f"param '{param}' is given both in params and in matrix",
                    key=True,
                )
        # Names given, even with a bad value: a template naming one is not "unknown" as well.
        known = sorted(
            {
                str(n)
                for section in ("params", "matrix")
                if isinstance(raw.get(section), dict)
                for n in raw[section]
            }
        )

        url = self._url(path, raw, defaults, known)
        headers = dict(defaults.get("headers", {}))
        own_headers = values["headers"]
        for header, value in own_headers.items():
            for existing in [h for h in headers if h.lower() == header.lower()]:
                del headers[existing]
            headers[header] = value
        body = None
        if "body" in raw:
            body = self._body(path + ("body",), raw["body"], method, headers)
        ttl_ms = values["ttl"]
        if ttl_ms is None and "ttl" not in raw and "ttl" not in self.defaults_given:
            self.add(path, "missing field 'ttl' (set ttl here or in defaults)")
        tags = get("tags", lambda p, v: self._templates(p, v, known), ())
        depends_on = get("depends_on", lambda p, v: self._templates(p, v, known), ())
        fallback = None
        if "fallback_url" in raw and path + ("fallback_url",) not in self.unset:
            fallback = self._url_template(
                path + ("fallback_url",), raw["fallback_url"], defaults, known
            )
        for header, value in headers.items():
            if is_secret_header(header):
                self._secret_header_value(header, value)

        has_authorization = any(h.lower() == "authorization" for h in headers)
        if url is not None and has_authorization:
            userinfo = urlsplit(url.render({n: "x" for n in url.names}, str)).username
            if userinfo is not None:
                self.add(
                    path + ("url",),
                    "the URL carries credentials (user:password@) and an Authorization header is "
                    "set too: keep one of them",
                )
        if len(self.problems) > before or None in (name, url, ttl_ms):
            return None
        return Endpoint(
            file=self.doc.file,
            index=index,
            line=self.doc.mark(path).line,
            name=name,
            url=url,
            method=method,
            headers=headers,
            body=body,
            timeout_seconds=values["timeout"],
            params=params,
            matrix=tuple(matrix),
            ttl_ms=ttl_ms,
            tags=tuple(tags or ()),
            depends_on=tuple(depends_on or ()),
            cache_if=values["cache_if"],
            fallback_url=fallback,
            concurrency=values["concurrency"],
            rate=values["rate"],
            retries=values["retries"],
            max_response_bytes=values["max_response_bytes"],
        )

    def _url(self, path: DocPath, raw: dict, defaults: dict, known: list[str]) -> Template | None:
        if "url" not in raw:
            self.add(path, "missing field 'url'")
            return None
        if path + ("url",) in self.unset:
            return None
        return self._url_template(path + ("url",), raw["url"], defaults, known)

    def _url_template(
        self, path: DocPath, raw: Any, defaults: dict, known: list[str]
    ) -> Template | None:
        text = own = fields.text(self, path, raw)
        if text is None:
            return None
        absolute = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text) is not None
        if not absolute:
            base = defaults.get("base_url")
            if base is None:
                self.add(path, f"{text!r} is a path and defaults.base_url is not set")
                return None
            text = base.rstrip("/") + "/" + text.lstrip("/")
        template = self._template(path, text, known)
        if template is None:
            return None
        sample = template.render({n: "x" for n in template.names}, str)
        parts = _split(sample)
        if parts is None:
            self.add(path, _url_problem(sample) or "this URL cannot be read")
            return None
        if parts.scheme not in ("http", "https") or not parts.netloc:
            self.add(path, f"expected an http:// or https:// URL, got {mask_query_secrets(text)!r}")
            return None
        for value in _query_secrets(text):
            self._secret(value, "a secret query value in a URL")
        self._secret(parts.password, "the password in a URL")
        # What is sent as written: the URL's own text, with each placeholder as a plain value
        # (the values filled in are percent-encoded). A path joined to base_url is checked
        # alone: the base was checked in defaults.
        written = template if absolute else Template.parse(own)[0]
        filled = written.render({n: "1" for n in written.names}, str)
        problem = (
            _url_problem(filled, self.secrets) if absolute
            else _tail_problem("/" + filled.lstrip("/"), self.secrets)
        )  # fmt: skip
        in_query = [n for n in known if n not in template.names]
        if problem is None and path[-1] == "url" and in_query and "#" in sample:
            # The params not in the URL are added to its end: after a fragment, never sent.
            problem = (
                f"the URL ends in a #fragment, which is never sent, and the params not in it "
                f"({', '.join(in_query)}) would be added after it: remove it, or write %23 for a "
                "literal #"
            )
        if problem:
            self.add(path, problem)
            return None
        return template

    def _template(self, path: DocPath, text: str, known: list[str]) -> Template | None:
        template, problems = Template.parse(text)
        for problem in problems:
            self.add(path, problem)
        for name in sorted(template.names - set(known)):
            guess = nearest(name, known)
            there = f"params here: {', '.join(known)}" if known else "this endpoint has no params"
            hint = f" (did you mean '{guess}'?)" if guess else f" ({there})"
            self.add(path, f"the template names an unknown param '{name}'{hint}")
        return None if problems or template.names - set(known) else template

    def _templates(self, path: DocPath, raw: Any, known: list[str]) -> tuple[Template, ...] | None:
        items = [raw] if isinstance(raw, (str, int)) and not isinstance(raw, bool) else raw
        if not isinstance(items, list):
            self.add(path, f"expected a list of names, got {kind_of(raw)}")
            return None
        out = []
        for i, item in enumerate(items):
            if isinstance(item, bool) or not isinstance(item, (str, int)):
                self.add(path + (i,), f"expected a name, got {kind_of(item)}")
                continue
            text = str(item)
            if not text.strip():
                self.add(path + (i,), "expected a name, got an empty value")
                continue
            what = "a tag name" if path[-1] == "tags" else "a dependency name"
            self.key_texts.append((path + (i,), text, what))
            template = self._template(path + (i,), text, known)
            if template is not None:
                out.append(template)
        return tuple(out)

    # -- values that depend on others -------------------------------------------------------

    def _required_text(self, path: DocPath, raw: dict, name: str) -> str | None:
        if name not in raw:
            self.add(path, f"missing field '{name}'")
            return None
        return fields.text(self, path + (name,), raw[name])

    def _body(self, path: DocPath, raw: Any, method: str | None, headers: dict) -> bytes | None:
        if method != "POST":
            self.add(path, "a body is sent only with method: POST")
            return None
        if isinstance(raw, str):
            return raw.encode()
        problem = _json_problem(raw)
        if problem:
            self.add(path, problem)
            return None
        if not any(h.lower() == "content-type" for h in headers):
            headers["Content-Type"] = "application/json"
        return js_stringify(raw).encode()

    # -- params and matrix -------------------------------------------------------------------

    def _params(self, path: DocPath, raw: Any) -> dict[str, Any] | None:
        if not isinstance(raw, dict):
            self.add(path, f"expected a mapping of param names to values, got {kind_of(raw)}")
            return None
        out = {}
        for name, value in raw.items():
            if not isinstance(name, str):
                self.add(
                    path + (name,), f"a param name must be text, got {kind_of(name)}", key=True
                )
                continue
            if not self._param_name(path + (name,), name):
                continue
            if path + (name,) in self.unset:
                continue
            problem = _json_problem(value)
            if problem:
                self.add(path + (name,), problem)
                continue
            self.key_texts.extend((path + (name,), t, f"param '{name}'") for t in _texts_in(value))
            out[name] = value
        return out

    def _param_name(self, path: DocPath, name: str) -> bool:
        """False (with a problem) for a param named like a credential: docs/keyspace.md makes every
        param part of the entry key, which Redis, the tag sets and the write log hold and
        expand and the report show."""
        if not is_secret_param(name):
            return True
        self.add(
            path,
            f"param '{name}' looks like a credential, and every param is part of the entry key: "
            "send it as a header (headers never enter a key), or, if the API reads it only from "
            f"the query string, write it into the url (?{name}=${{VAR}}): the url's own text "
            "never enters a key",
            key=True,
        )
        return False

    def _matrix(self, path: DocPath, raw: Any) -> list[tuple[str, Source]] | None:
        if not isinstance(raw, dict):
            self.add(
                path,
                f"expected a mapping of param names to lists, ranges or files, got {kind_of(raw)}",
            )
            return None
        if not raw:
            self.add(path, "the matrix is empty: remove it, or give it params")
        out = []
        for name, spec in raw.items():
            at = path + (name,)
            if not isinstance(name, str):
                self.add(at, f"a param name must be text, got {kind_of(name)}", key=True)
                continue
            if not self._param_name(at, name):
                continue
            source = self._source(at, spec)
            if source is not None:
                out.append((name, source))
                if isinstance(source, ListValues):
                    self.key_texts.extend(
                        (at + (i,), t, f"param '{name}'")
                        for i, value in enumerate(source) for t in _texts_in(value)
                    )  # fmt: skip
        return out

    def _source(self, path: DocPath, spec: Any) -> Source | None:
        if isinstance(spec, list):
            if not spec:
                self.add(path, "the list of values is empty")
                return None
            ok = True
            for i, value in enumerate(spec):
                problem = _json_problem(value)
                if problem:
                    self.add(path + (i,), problem)
                    ok = False
            return ListValues(tuple(spec)) if ok else None
        if not isinstance(spec, dict):
            self.add(
                path,
                f"expected a list, {{range: [first, last]}} or {{file: path}}, got {kind_of(spec)}",
            )
            return None
        if set(self.problems.unknown_keys(path, spec, SOURCE_FIELDS)):
            return None
        if ("range" in spec) == ("file" in spec):
            self.add(path, "expected exactly one of range: [first, last] or file: path")
            return None
        if "range" in spec:
            if "as" in spec:
                self.add(path + ("as",), "'as' applies to file: sources only", key=True)
            return self._range(path + ("range",), spec["range"])
        return self._file(path, spec)

    def _range(self, path: DocPath, raw: Any) -> RangeValues | None:
        ints = (
            isinstance(raw, list)
            and len(raw) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in raw)
        )
        if not ints:
            self.add(path, f"expected two whole numbers [first, last], got {_range_kind(raw)}")
            return None
        first, last = raw
        if max(abs(first), abs(last)) > MAX_RANGE_VALUE:
            self.add(
                path,
                f"a range's ends must be within ±{MAX_RANGE_VALUE} (2^53 - 1, the largest whole "
                "number a key writes exactly), got " + ", ".join(_short_number(v) for v in raw),
            )
            return None
        if first > last:
            self.add(path, f"the range is empty: first ({first}) is greater than last ({last})")
            return None
        return RangeValues(first, last)

    def _file(self, path: DocPath, spec: dict) -> FileValues | None:
        kind = spec.get("as", "json")
        if kind not in FILE_VALUE_KINDS:
            self.add(path + ("as",), f"expected json or string, got {kind_of(kind)}")
            return None
        name = fields.text(self, path + ("file",), spec["file"])
        if name is None:
            return None
        file = self.here / os.path.expanduser(name)
        try:
            count = _count_values(file, kind, self.limits)
        except ManifestError as exc:  # unreadable, not a regular file, a line past the limit
            self.add(path + ("file",), exc.message)
            return None
        if count == 0:
            self.add(path + ("file",), f"{file} holds no values (blank and # lines are skipped)")
            return None
        return FileValues(str(file), kind, count, self.limits)


def _count_values(file: Path, kind: str, limits: InputLimits) -> int:
    """The values in a matrix file, each read once here so that a bad line is found now."""
    count = 0
    for number, line in read_lines(str(file), ManifestError, limits):
        text = line.strip()
        if text and not text.startswith("#"):
            if kind == "json":
                file_value(text, str(file), number, limits)
            count += 1
    return count


def _short_number(value: int) -> str:
    text = str(value) if abs(value) < 10**30 else ""
    return text or "a number of over 30 digits"


def _range_kind(raw: Any) -> str:
    if isinstance(raw, list):
        return f"a list of {len(raw)}: " + ", ".join(kind_of(v) for v in raw[:3])
    return kind_of(raw)


def _json_problem(value: Any) -> str | None:
    """Why `value` cannot be a param or body value (JSON holds it), or None when it can."""
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value} is not a JSON number"
    if isinstance(value, list):
        return next((p for p in map(_json_problem, value) if p), None)
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"an object key must be text, got {kind_of(key)}"
            problem = _json_problem(item)
            if problem:
                return problem
        return None
    if type(value).__name__ in ("date", "datetime"):
        return f"{value} reads as a date: put it in quotes to keep it as text"
    return f"expected a JSON value, got a {type(value).__name__}"
