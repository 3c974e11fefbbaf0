"""Every setting resolved in one place: command-line flag > environment > config file > default.

Each setting remembers where its value came from, so `cachectl doctor` can say why it has the
value it has. The config file has top-level settings that are the base of every profile, a
`profiles:` mapping, and `default_profile:`; see sample_configs/cachectl.yaml.

yaml is imported only when a config file is read (via cachectl.yamlsrc), never at import time.
"""

from __future__ import annotations

import errno
import math
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from cachectl.errors import CachectlError, ConfigError, EnvVarMissing, UsageError
from cachectl.layout import LOCK_SUFFIX, LayoutConfig
from cachectl.redact import MASK, is_secret_header, mask_url, scrub, userinfo_breaks_url
from cachectl.sentinel_url import (
    SENTINEL_SCHEMES,
    SentinelConfig,
    SentinelTarget,
    is_sentinel_url,
    parse_sentinel_url,
    sentinel_host,
)
from cachectl.yamlsrc import DocPath, Problems, YamlDoc, kind_of, load_yaml, nearest


@dataclass(frozen=True)
class TLSConfig:
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True  # verify the server certificate and hostname


@dataclass(frozen=True)
class Settings:
    url: str = "redis://localhost:6379/0"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cluster: bool | None = None  # None = detect from the server
    tls: TLSConfig = TLSConfig()
    sentinel: SentinelConfig = SentinelConfig()  # noqa: RUF009 (frozen: one shared default)
    connect_timeout: float = 5.0  # seconds
    timeout: float = 10.0  # command (socket) timeout, seconds
    retries: int = 3  # on connection errors, exponential backoff with jitter
    scan_count: int = 1000
    batch_size: int = 1000
    rate: float | None = None  # keys per second cap for bulk operations; None = no cap
    # `invalidate`: a tag or dependency set that does not exist, or a selection that matched
    # nothing, is exit 5 (not found) rather than 0.
    strict: bool = False
    # `cachectl exporter`: where it serves /metrics when --listen is not given.
    exporter_listen: str = "127.0.0.1:9787"
    layout: LayoutConfig = LayoutConfig()  # noqa: RUF009 (frozen: one shared default is safe)
    profile: str | None = None
    config_file: str | None = None
    # setting -> where its value came from: "flag --url", "env CACHECTL_URL",
    # "config /path/cachectl.yaml:12 (profile prod)", "default".
    sources: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def masked_url(self) -> str:
        return mask_url(self.url)

    def sentinel_target(self) -> SentinelTarget | None:
        """Where the Sentinel deployment is, or None for a plain server or a cluster. A
        `redis+sentinel://` URL names it all; else `sentinel.hosts` and `sentinel.service` do,
        and the URL gives only its scheme (rediss:// for TLS), database and credentials."""
        if is_sentinel_url(self.url):
            return parse_sentinel_url(self.url)
        if not self.sentinel.hosts:
            return None
        parts = urlsplit(self.url)
        db = parts.path.strip("/")
        return SentinelTarget(
            tuple(sentinel_host(h) for h in self.sentinel.hosts),
            self.sentinel.service or "",
            int(db) if db.isdigit() else 0,
            _url_username(self.url) if parts.password else None,
            _url_password(self.url),
        )

    def bad_setting(self, name: str, reason: str) -> CachectlError:
        """The error for a setting whose value proves unusable once it is used (a TLS file that
        does not exist), naming the setting and where its value came from: a usage error (exit
        2) when that was a flag, a config error (exit 3) for the environment or a file."""
        source = self.sources.get(name, "default")
        kind = UsageError if source.startswith("flag ") else ConfigError
        return kind(f"{name}: {reason} (from {source})")

    def value_of(self, name: str) -> Any:
        """A setting by the name `sources` and `describe` use: "timeout", "tls.ca_file"."""
        section, _, leaf = name.rpartition(".")
        return getattr(getattr(self, section) if section else self, leaf)

    def describe(self) -> list[tuple[str, str, str]]:
        """(setting, value as shown with secrets masked, where it came from), for doctor."""
        rows = [
            (
                "config_file",
                self.config_file or "(none)",
                self.sources.get("config_file", "default"),
            ),
            ("profile", self.profile or "(none)", self.sources.get("profile", "default")),
        ]
        for name in SETTING_NAMES:
            source = self.sources.get(name, "default")
            if name == "password" and not self.password and _url_password(self.url):
                rows.append((name, f"{MASK} (in the URL)", self.sources.get("url", "default")))
            elif name == "username" and not self.username and _url_username(self.url):
                # A user name is no secret: the one in the URL is shown as the one in use.
                shown = f"{_url_username(self.url)} (in the URL)"
                rows.append((name, shown, self.sources.get("url", "default")))
            else:
                rows.append((name, _shown(name, self.value_of(name)), source))
        return rows

    def __repr__(self) -> str:
        # The URL may carry a password; the generated repr would print it.
        shown = {f.name: getattr(self, f.name) for f in fields(self) if f.repr}
        shown["url"] = self.masked_url()
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"


# ---- parsing one value -------------------------------------------------------------------
# Each parser takes a value as YAML, the environment (text) or a flag gives it and returns the
# setting's value, or raises ValueError saying what is expected.

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NO_CAP = {"none", "unlimited", "off"}
_SCHEMES = ("redis", "rediss", "unix", *SENTINEL_SCHEMES)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if _is_number(value) or isinstance(value, bool):
        # YAML read it as a number (never echoed: this parser reads passwords too) or a boolean.
        raise ValueError(
            f"expected text, got {'a number' if _is_number(value) else kind_of(value)}"
            " (put it in quotes)"
        )
    raise ValueError(f"expected text, got {kind_of(value)}")


def _name(value: Any) -> str:
    if not _text(value).strip():
        raise ValueError("expected text, got an empty value")
    return value


def _path(value: Any) -> str:
    return os.path.expanduser(_name(value))


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"expected true or false, got {kind_of(value)}")


def _cluster(value: Any) -> bool | None:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return None
    try:
        return _bool(value)
    except ValueError:
        raise ValueError(f"expected true, false or auto, got {kind_of(value)}") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_number(value: Any) -> float | None:
    if _is_number(value):
        return value if abs(value) < 1e300 else math.inf  # no OverflowError on a huge int
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


# Sane bounds: past them a value is a typo, and would reach a socket or a sleep as an
# OverflowError (a timeout of 10^21 seconds) or hold a connection for a lifetime.
MAX_TIMEOUT_SECONDS = 86400.0
MAX_RETRIES = 100
MAX_BATCH = 1_000_000  # scan_count, batch_size
MAX_RATE = 1e9


def _shown_number(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return "a number of over 30 digits"
    if isinstance(value, str) and len(value) > 40:
        return f"{value[:37]!r}..."
    return kind_of(value)


def _seconds(value: Any) -> float:
    number = _as_number(value)
    if number is None or not math.isfinite(number) or not 0 < number <= MAX_TIMEOUT_SECONDS:
        raise ValueError(
            f"expected a number of seconds greater than 0 and at most {MAX_TIMEOUT_SECONDS:.0f}"
            f" (a day), got {_shown_number(value)}"
        )
    return float(number)


def _listen(value: Any) -> str:
    """HOST:PORT, [IPv6]:PORT or :PORT, as `cachectl exporter --listen` takes it."""
    text = _text(value).strip()
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535 or (":" in host and "[" not in host):
        raise ValueError(f"expected HOST:PORT (127.0.0.1:9787), got {text!r}")
    return text


def _whole(minimum: int, maximum: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        number = _as_number(value)
        if (
            number is None
            or not math.isfinite(number)
            or number != int(number)
            or not minimum <= number <= maximum
        ):
            raise ValueError(
                f"expected a whole number from {minimum} to {maximum}, got {_shown_number(value)}"
            )
        return int(number)

    return parse


def _rate(value: Any) -> float | None:
    if isinstance(value, str) and value.strip().lower() in _NO_CAP:
        return None
    number = _as_number(value)
    if number is None or not math.isfinite(number) or not 0 < number <= MAX_RATE:
        raise ValueError(
            f"expected keys per second greater than 0 and at most {MAX_RATE:g}, or 'none' for no "
            f"cap, got {_shown_number(value)}"
        )
    return float(number)


def _choice(*options: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {kind_of(value)}")
        return value

    return parse


def _headers(value: Any) -> tuple[str, ...]:
    """A list of header names, or one comma-separated text (as the environment gives it)."""
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"expected a list of header names, got {kind_of(value)}")
    names = [n.strip() for n in names if n.strip()]
    secret = [n for n in names if is_secret_header(n)]
    if secret:
        # docs/keyspace.md: credentials never enter a key.
        raise ValueError(f"header {secret[0]} carries credentials and may not be part of a key")
    return tuple(names)


def _sentinel_hosts(value: Any) -> tuple[str, ...]:
    """A list of `host:port` (YAML) or one comma-separated text (the environment)."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ValueError(f"expected a list of host:port, got {kind_of(value)}")
    hosts = []
    for item in items:
        text = _name(item).strip()
        sentinel_host(text)
        hosts.append(text)
    return tuple(hosts)


def _url(value: Any) -> str:
    url = _name(value).strip()
    problem = url_problem(url)
    if problem:
        raise ValueError(problem)
    return url


def url_problem(url: str) -> str | None:
    """What is wrong with a Redis URL, or None. The words never quote the user name or the
    password: a reason from urllib or redis-py may hold a piece of them (a password holding a
    '/' ends the host part there, and what follows is read as a port or a database)."""
    shown = mask_url(url)

    def bad(reason: str) -> str:
        return f"invalid Redis URL {shown}: {reason}"

    if is_sentinel_url(url):
        try:
            parse_sentinel_url(url)
        except ValueError as exc:
            return bad(str(exc))
        return None
    if userinfo_breaks_url(url):
        return bad(
            "the password (or user name) holds a '/', '#' or '?', which ends a URL's host part: "
            "percent-encode it (%2F, %23, %3F), or leave the password out of the URL and set "
            "CACHECTL_PASSWORD or the profile's `password:`"
        )
    try:
        parts = urlsplit(url)
    except ValueError:
        return bad("it cannot be read as a URL (an unclosed '[' in the host?)")
    try:
        parts.port  # noqa: B018 -- raises on a port that is not a number in range
    except ValueError as exc:  # its words quote the port, which may be a piece of a password
        return bad(
            "the port is out of range (0-65535)"
            if "range" in str(exc)
            else "the port is not a number"
        )
    if parts.scheme not in _SCHEMES:
        return bad(
            f"unknown scheme '{parts.scheme}' (expected redis://, rediss://, unix:// or redis+sentinel://)"
        )
    if parts.scheme == "unix":
        if not parts.path:
            return bad("no socket path (for example unix:///run/redis/redis.sock)")
    elif not parts.hostname:
        return bad("no host (for example redis://localhost:6379/0)")
    elif parts.path.strip("/") and not parts.path.strip("/").isdigit():
        return bad(f"the database '{parts.path.strip('/')}' is not a number")
    return None


def _url_username(url: str) -> str | None:
    """The user name in the URL; masked when it stands alone (`redis://name@host`), as every
    URL cachectl shows masks it: it may be a password written without its colon."""
    if userinfo_breaks_url(url):
        return None
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return None
    if not user:
        return None
    return unquote(user) if password is not None else MASK


def _url_password(url: str) -> str | None:
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


# ---- the settings table ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Setting:
    name: str  # as `sources` and `describe` name it: "timeout", "tls.ca_file", "layout.prefix"
    parse: Callable[[Any], Any]
    env: tuple[str, ...] = ()

    @property
    def flag_key(self) -> str:
        """Its key in load_settings' `flags`: the CLI option's name with underscores."""
        section, _, leaf = self.name.rpartition(".")
        return f"{section}_{leaf}" if section in ("tls", "sentinel") else leaf

    @property
    def flag(self) -> str:
        # The CLI turns certificate verification off, never on.
        return (
            "--tls-insecure"
            if self.name == "tls.verify"
            else "--" + self.flag_key.replace("_", "-")
        )


_LAYOUT_PARSERS: dict[str, Callable[[Any], Any]] = {
    "param_encoding": _choice("json", "plain"),
    "scheme": _choice("standard", "versioned"),
    "header_allowlist": _headers,
}
_LAYOUT_ENV = {
    "prefix": ("CACHECTL_PREFIX",),
    "param_encoding": ("CACHECTL_PARAM_ENCODING",),
    # One command run against another generation of versioned keys (to retire api:v1:*).
    "scheme": ("CACHECTL_SCHEME",),
    "version": ("CACHECTL_LAYOUT_VERSION",),
}

_SETTINGS: dict[str, _Setting] = {
    s.name: s
    for s in (
        _Setting("url", _url, ("CACHECTL_URL", "REDIS_URL")),
        _Setting("username", _name, ("CACHECTL_USERNAME",)),
        _Setting("password", _text, ("CACHECTL_PASSWORD",)),
        _Setting("cluster", _cluster, ("CACHECTL_CLUSTER",)),
        _Setting("tls.ca_file", _path, ("CACHECTL_TLS_CA_FILE",)),
        _Setting("tls.cert_file", _path, ("CACHECTL_TLS_CERT_FILE",)),
        _Setting("tls.key_file", _path, ("CACHECTL_TLS_KEY_FILE",)),
        _Setting("tls.verify", _bool, ("CACHECTL_TLS_VERIFY",)),
        _Setting("sentinel.hosts", _sentinel_hosts, ("CACHECTL_SENTINEL_HOSTS",)),
        _Setting("sentinel.service", _name, ("CACHECTL_SENTINEL_SERVICE",)),
        _Setting("sentinel.username", _name, ("CACHECTL_SENTINEL_USERNAME",)),
        _Setting("sentinel.password", _text, ("CACHECTL_SENTINEL_PASSWORD",)),
        _Setting("connect_timeout", _seconds, ("CACHECTL_CONNECT_TIMEOUT",)),
        _Setting("timeout", _seconds, ("CACHECTL_TIMEOUT",)),
        _Setting("retries", _whole(0, MAX_RETRIES), ("CACHECTL_RETRIES",)),
        _Setting("scan_count", _whole(1, MAX_BATCH), ("CACHECTL_SCAN_COUNT",)),
        _Setting("batch_size", _whole(1, MAX_BATCH), ("CACHECTL_BATCH_SIZE",)),
        _Setting("rate", _rate, ("CACHECTL_RATE",)),
        _Setting("strict", _bool, ("CACHECTL_STRICT",)),
        _Setting("exporter_listen", _listen, ("CACHECTL_EXPORTER_LISTEN",)),
        *(
            _Setting(
                f"layout.{f.name}", _LAYOUT_PARSERS.get(f.name, _name), _LAYOUT_ENV.get(f.name, ())
            )
            for f in fields(LayoutConfig)
        ),
    )
}
SETTING_NAMES: tuple[str, ...] = tuple(_SETTINGS)
_BY_FLAG = {s.flag_key: s for s in _SETTINGS.values()}
_SECTIONS = ("tls", "sentinel", "layout")
_TLS_FILES = ("tls.ca_file", "tls.cert_file", "tls.key_file")


def _shown(name: str, value: Any) -> str:
    if name in ("password", "sentinel.password"):
        return MASK if value else "(not set)"
    if name == "url":
        return mask_url(value)
    if value is None:
        return {"cluster": "auto (detect from the server)", "rate": "no cap"}.get(name, "(not set)")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ", ".join(value) or "(none)"
    return str(value)


# ---- resolving ------------------------------------------------------------------------------


def load_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_path: str | None = None,
    profile: str | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Resolves every setting: flag > environment > config file (profile over base) > default.

    `flags` holds the command line's values by flag key (`url`, `timeout`, `tls_ca_file`,
    `tls_verify`, `prefix`, ...; None = not given); `config_path` and `profile` are --config
    and --profile. `env` defaults to os.environ, `cwd` to the working directory.
    Every problem found (in the file, the environment and the flags) is reported in one
    ConfigError, or EnvVarMissing when all of them are unset `${VAR}`s.
    """
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else Path(cwd)
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    unknown = sorted(set(flags) - set(_BY_FLAG))
    if unknown:
        raise TypeError(f"load_settings got unknown flags: {', '.join(unknown)}")
    from_flags = _read_flags(flags)

    config_file, config_source = _find_config_file(config_path, env, cwd)
    doc = load_yaml(config_file, env=env) if config_file else None
    problems = Problems(doc)
    secrets: list[str | None] = []
    chosen, profile_source = _choose_profile(profile, env, doc, config_source, problems)
    paths: dict[str, DocPath] = {}
    from_file = _read_config_file(doc, chosen, problems, secrets, paths) if doc else {}

    values: dict[str, Any] = {}
    sources = {"config_file": config_source, "profile": profile_source}
    for setting in _SETTINGS.values():
        found = from_flags.get(setting.name) or _resolve(setting, env, from_file, problems, secrets)
        if found is not None:
            values[setting.name], sources[setting.name] = found
        else:
            sources[setting.name] = "default"
    layout = LayoutConfig(**_section(values, "layout"))
    _check_layout(layout, sources, paths, problems)

    kind = EnvVarMissing if problems and all(p.env_var for p in problems) else ConfigError
    problems.raise_if_any(
        str(config_file) if config_file else "settings", kind=kind, secrets=secrets
    )
    return Settings(
        **{n: v for n, v in values.items() if "." not in n},
        tls=TLSConfig(**_section(values, "tls")),
        sentinel=SentinelConfig(**_section(values, "sentinel")),
        layout=layout,
        profile=chosen,
        config_file=str(config_file) if config_file else None,
        sources=sources,
    )


def _read_flags(flags: Mapping[str, Any]) -> dict[str, tuple[Any, str]]:
    """Each flag's value parsed: name -> (value, source). A bad value is a usage error (exit
    2), as typer's own type checks are, and is found before any file is read."""
    out: dict[str, tuple[Any, str]] = {}
    bad: list[str] = []
    secrets: list[str | None] = []
    for key, raw in flags.items():
        setting = _BY_FLAG[key]
        no_cluster = key == "cluster" and raw is False
        source = "flag --no-cluster" if no_cluster else f"flag {setting.flag}"
        _note_secret(setting.name, raw, secrets)
        try:
            out[setting.name] = (setting.parse(raw), source)
        except ValueError as exc:
            bad.append(scrub(f"{source}: {exc}", secrets))
    if bad:
        message = bad[0] if len(bad) == 1 else f"{len(bad)} bad flag values, the first: {bad[0]}"
        raise UsageError(message, details={"problems": bad})
    return out


def _section(values: Mapping[str, Any], section: str) -> dict[str, Any]:
    prefix = section + "."
    return {n[len(prefix) :]: v for n, v in values.items() if n.startswith(prefix)}


def _resolve(
    setting: _Setting,
    env: Mapping[str, str],
    from_file: Mapping[str, tuple[Any, str]],
    problems: Problems,
    secrets: list,
) -> tuple[Any, str] | None:
    """(value, source) from the environment or the file, or None for the default."""
    var = next((v for v in setting.env if env.get(v)), None)
    if var is None:
        return from_file.get(setting.name)
    raw, source = env[var], f"env {var}"
    _note_secret(setting.name, raw, secrets)
    try:
        return setting.parse(raw), source
    except ValueError as exc:
        problems.note(f"{source}: {exc}")
        return None


# What each root of the layout names, as a problem says it.
_LAYOUT_KINDS = {
    "prefix": "cache entries",
    "tag_prefix": "tag sets",
    "dependency_prefix": "dependency sets",
    "metrics_prefix": "hit/miss metrics",
    "metric_prefix": "time series",
    "meta_prefix": "time series metadata",
    "agg_prefix": "time series aggregates",
}


def _check_layout(
    layout: LayoutConfig,
    sources: Mapping[str, str],
    paths: Mapping[str, DocPath],
    problems: Problems,
) -> None:
    """Two kinds of keys that would share a prefix (or the two logs one name): a problem at
    the setting that made them meet, naming both kinds and the prefix. cachectl.layout.Layout
    refuses the same layouts, by the same rule, but can say neither where nor which."""
    versioned = layout.scheme == "versioned"
    entry = "versioned_prefix" if versioned else "prefix"
    roots = [
        (
            "cache entries",
            entry,
            f"{layout.versioned_prefix}:{layout.version}:" if versioned else f"{layout.prefix}:",
        ),
        *((kind, name, f"{getattr(layout, name)}:")
          for name, kind in _LAYOUT_KINDS.items() if name != "prefix"),
        ("stampede locks", entry, f"{getattr(layout, entry)}{LOCK_SUFFIX}"),
    ]  # fmt: skip
    seen: dict[str, tuple[str, str]] = {}
    clashes = []
    for kind, name, root in roots:
        if root in seen:
            clashes.append((seen[root], (kind, name), f"the prefix '{root}'"))
        else:
            seen[root] = (kind, name)
    if layout.entries_log == layout.access_log:
        clashes.append((
            ("the write log", "entries_log"),
            ("the access log", "access_log"),
            f"the name '{layout.entries_log}'",
        ))  # fmt: skip
    for clash in clashes:
        _layout_clash(clash, sources, paths, problems)


def _layout_clash(
    clash: tuple[tuple[str, str], tuple[str, str], str],
    sources: Mapping[str, str],
    paths: Mapping[str, DocPath],
    problems: Problems,
) -> None:
    (kind_a, name_a), (kind_b, name_b), shared = clash

    def described(kind: str, name: str) -> str:
        default = sources.get(f"layout.{name}", "default") == "default"
        return f"{kind} (layout.{name}{', by default' if default else ''})"

    message = (
        f"{described(kind_a, name_a)} and {described(kind_b, name_b)} would share {shared}: "
        "give one of them another (two kinds of keys may not share a prefix or name)"
    )
    # Said where a value was set: in the file when it was set there, else its flag or variable.
    for name in (name_b, name_a):
        source = sources.get(f"layout.{name}", "default")
        if f"layout.{name}" in paths and source.startswith("config "):
            problems.add(paths[f"layout.{name}"], message)
            return
    for name in (name_b, name_a):
        source = sources.get(f"layout.{name}", "default")
        if source != "default":
            problems.note(f"{source}: {message}")
            return
    problems.note(message)


def _note_secret(name: str, raw: Any, secrets: list) -> None:
    if name in ("password", "sentinel.password") and isinstance(raw, str):
        secrets.append(raw)
    elif name == "url" and isinstance(raw, str):
        secrets.append(_url_password(raw))


def _find_config_file(
    config_path: str | None, env: Mapping[str, str], cwd: Path
) -> tuple[Path | None, str]:
    """The config file to read and how it was found; an explicit file that is missing is an error."""
    if config_path:
        explicit, source = config_path, "flag --config"
    elif env.get("CACHECTL_CONFIG"):
        explicit, source = env["CACHECTL_CONFIG"], "env CACHECTL_CONFIG"
    else:
        explicit = None
    if explicit:
        path = cwd / Path(explicit).expanduser()
        problem = _not_a_config_file(path)
        if problem == "not found":
            raise ConfigError(f"config file not found: {path} (from {source})")
        if problem:
            raise ConfigError(f"config file {path} (from {source}): {problem}")
        return path, source

    xdg = env.get("XDG_CONFIG_HOME")
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    user_dir = Path(xdg) if xdg and os.path.isabs(xdg) else home / ".config"
    candidates = [
        (cwd / "cachectl.yaml", "found in the working directory"),
        (user_dir / "cachectl" / "config.yaml", "found in the user config folder"),
    ]
    for path, source in candidates:
        if path.is_file():
            return path, source
    return None, "none found (looked for " + ", ".join(str(p) for p, _ in candidates) + ")"


def _not_a_config_file(path: Path) -> str | None:
    """Why `path` cannot be read as a config file, in words (None when it can be opened: a
    regular file, or a pipe or character device read within the limits on input files)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a loop of symbolic links, not a file"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return "not found"
        return f"cannot read: {exc.strerror or exc}"
    if stat.S_ISDIR(mode):
        return "a directory, not a file"
    if stat.S_ISREG(mode) or stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return None
    return "not a regular file (a socket or block device): cachectl reads text files"


def profile_names(
    config_path: str | None = None, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> list[str]:
    """The profiles the config file defines (the file found as load_settings finds it), in file
    order; [] when there is no file or it has no `profiles:` mapping. For shell completion: the
    file is read, never checked, and an unreadable file raises as load_settings would."""
    env = os.environ if env is None else env
    config_file, _ = _find_config_file(config_path, env, Path.cwd() if cwd is None else cwd)
    if config_file is None:
        return []
    defined = load_yaml(config_file, env=env).get(("profiles",))
    return [str(name) for name in defined] if isinstance(defined, dict) else []


def _choose_profile(
    profile: str | None,
    env: Mapping[str, str],
    doc: YamlDoc | None,
    config_source: str,
    problems: Problems,
) -> tuple[str | None, str]:
    """The profile asked for (flag > env > the file's default_profile) and where that came from.
    A profile the file does not define is a problem listing the ones it does."""
    default = doc.get(("default_profile",)) if doc else None
    from_default = False
    if profile:
        chosen, source = profile, "flag --profile"
    elif env.get("CACHECTL_PROFILE"):
        chosen, source = env["CACHECTL_PROFILE"], "env CACHECTL_PROFILE"
    elif default is not None:
        if not isinstance(default, str):
            problems.add(("default_profile",), f"expected a profile name, got {kind_of(default)}")
            return None, "default"
        mark = doc.mark(("default_profile",))
        chosen, source = default, f"config {mark.file}:{mark.line} (default_profile)"
        from_default = True
    else:
        return None, "default"

    if doc is None:
        problems.note(
            f"profile '{chosen}' asked for ({source}) but there is no config file: {config_source}"
        )
        return None, source
    defined = doc.get(("profiles",))
    defined = [str(p) for p in defined] if isinstance(defined, dict) else []
    if chosen not in defined:
        guess = nearest(chosen, defined)
        there = (
            f"profiles there: {', '.join(defined)}" if defined else "the file defines no profiles"
        )
        message = f"unknown profile '{chosen}' ({source}); {there}" + (
            f" (did you mean '{guess}'?)" if guess else ""
        )
        if from_default:
            problems.add(("default_profile",), message)
        else:
            problems.note(f"{doc.file}: {message}")
        return None, source
    return chosen, source


def _read_config_file(
    doc: YamlDoc,
    profile: str | None,
    problems: Problems,
    secrets: list,
    paths: dict[str, DocPath],
) -> dict[str, tuple[Any, str]]:
    """The file's settings for `profile` (its section over the top-level base): name ->
    (value, source), and in `paths` where each is in the file. Every profile is checked, so a
    typo anywhere in the file is caught; an unset `${VAR}` counts only in the sections in use."""
    problems.extend(
        p
        for p in doc.problems
        if not p.env_var or p.path[:1] != ("profiles",) or p.path[:2] == ("profiles", profile)
    )
    top = problems.mapping((), "a mapping of settings")
    base = _read_section((), top, problems, secrets, skip=("profiles", "default_profile"))
    sections = {
        name: _read_section(
            ("profiles", name),
            problems.mapping(("profiles", name), "a mapping of settings"),
            problems,
            secrets,
        )
        for name in problems.mapping(("profiles",), "a mapping of profile names to settings")
    }
    here = Path(doc.file).parent

    def source(path: DocPath) -> str:
        at = f"config {doc.file}:{doc.mark(path).line}"
        return f"{at} (profile {profile})" if path[:1] == ("profiles",) else at

    out = {}
    for name, (value, path) in {**base, **sections.get(profile, {})}.items():
        if name in _TLS_FILES:
            value = str(here / value)  # relative to the config file, wherever it is run from
        out[name] = (value, source(path))
        paths[name] = path
    return out


def _read_section(
    path: DocPath,
    section: Mapping,
    problems: Problems,
    secrets: list,
    skip: Iterable[str] = (),
) -> dict[str, tuple[Any, DocPath]]:
    """The parsed settings of one section (the top level or a profile): name -> (value, path)."""
    entries: list[tuple[str, Any, DocPath]] = []
    for key, raw in section.items():
        if key in skip:
            continue
        if key in _SECTIONS:
            inner = problems.mapping(path + (key,), f"a mapping of {key} settings")
            entries += [(f"{key}.{k}", v, path + (key, k)) for k, v in inner.items()]
        elif "." in str(key):
            # `layout.prefix: x` would otherwise pass for the nested form.
            section_name, _, leaf = str(key).partition(".")
            problems.add(
                path + (key,),
                f"unknown setting '{key}': write {section_name}: {{{leaf}: ...}}",
                key=True,
            )
        else:
            entries.append((str(key), raw, path + (key,)))

    out = {}
    for name, raw, at in entries:
        setting = _SETTINGS.get(name)
        if setting is None:
            problems.add(at, _unknown_setting(name), key=True)
            continue
        if raw is None:  # left empty, or an unset ${VAR} (reported where it counts)
            continue
        _note_secret(name, raw, secrets)
        try:
            out[name] = (setting.parse(raw), at)
        except ValueError as exc:
            problems.add(at, str(exc))
    return out


def _unknown_setting(name: str) -> str:
    section, _, leaf = name.rpartition(".")
    for other in ("", *_SECTIONS):
        if other != section and (f"{other}.{leaf}" if other else leaf) in _SETTINGS:
            return f"unknown setting '{leaf}': it belongs " + (
                f"under {other}:" if other else "outside tls:, sentinel: and layout:"
            )
    same = [n.rpartition(".")[2] for n in _SETTINGS if n.rpartition(".")[0] == section]
    guess = nearest(leaf, same + ([] if section else list(_SECTIONS)))
    return f"unknown setting '{leaf}'" + (f" (did you mean '{guess}'?)" if guess else "")
