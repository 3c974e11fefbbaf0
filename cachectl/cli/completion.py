"""Shell completion (bash, zsh, fish): typer's own scripts (`cachectl --install-completion`,
`--show-completion`), and the values cachectl can offer for an option cheaply and safely.

A shell asks by running `cachectl` with `_CACHECTL_COMPLETE=complete_bash` (or `complete_zsh`,
`complete_fish`) and the command line in the environment; the answer is the candidates on
stdout. Command and option names come from the command tree itself. The completers here add:

- `--profile`: the profiles of the config file (found as every command finds it);
- `--tag`, `--depends-on`, `tags [PATTERN]`, `tags show TAG`: the tag (or dependency) set names in Redis, by SCAN
  over the tag index keys (`tag:*`, `depends_on:*`), only when a connection is configured (a
  URL from a flag, the environment or the config file: never a guess at localhost);
- `--endpoint` of `warm` and `manifest expand`: the endpoint names of the manifests already on
  the command line.

A completer runs while someone waits at a prompt, so it offers nothing rather than anything
slow, noisy or unsafe: Redis is asked with no retries, and one short bound (0.15 s, or
CACHECTL_COMPLETION_TIMEOUT) is its connect timeout, its read timeout and the limit on the whole
lookup (a server that accepts and never answers costs the shell no more); every error (no server, a bad config file, an ACL refusal) gives no candidates
and prints nothing (no message, no traceback, so never a secret); only SCAN and the server-mode
probe every connection makes (INFO) are sent, never a write. Half an answer is no answer: a scan
cut short by the budget offers nothing, as the shell would complete a prefix from the half.

This module is imported by the command modules that hook their options to it, so it imports
nothing heavy at the top: redis, yaml and threading load inside the completers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from cachectl.config import Settings

COMPLETE_VAR = "_CACHECTL_COMPLETE"
# The shell waits for the whole answer: Python and typer's start-up, then the lookup. One bound
# in seconds serves as the connect timeout, the read timeout and the limit on the whole lookup;
# CACHECTL_COMPLETION_TIMEOUT changes it (a Redis far away), within (0, MAX].
BUDGET_VAR = "CACHECTL_COMPLETION_TIMEOUT"
DEFAULT_BUDGET_SECONDS = 0.15
MAX_BUDGET_SECONDS = 10.0
SCAN_COUNT = 1000
MAX_CANDIDATES = 500  # a shell shows no more usefully; a scan past it stops


def lookup_budget(env: Mapping[str, str] | None = None) -> float:
    """The seconds a completion may wait for Redis or a manifest: CACHECTL_COMPLETION_TIMEOUT
    when it is a number in (0, 10], else the default (a completion says nothing, so a bad
    value is not an error)."""
    raw = (os.environ if env is None else env).get(BUDGET_VAR, "")
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_BUDGET_SECONDS
    return value if 0 < value <= MAX_BUDGET_SECONDS else DEFAULT_BUDGET_SECONDS


def words_before_cursor() -> list[str]:
    """The words of the command line being completed before the one under the cursor, read from
    the environment as typer's shell classes read them (COMP_WORDS and COMP_CWORD for bash,
    _TYPER_COMPLETE_ARGS for zsh, fish and PowerShell): what decides which part of the command
    tree main() builds."""
    instruction = os.environ.get(COMPLETE_VAR, "")
    _, _, shell = instruction.partition("_")
    from typer._click.shell_completion import get_completion_class  # typer vendors click
    from typer._completion_classes import completion_init

    completion_init()
    comp_cls = get_completion_class(shell)
    if comp_cls is None:
        return []  # typer says the shell is not supported, once the app is built
    try:
        args, _ = comp_cls(None, {}, "cachectl", COMPLETE_VAR).get_completion_args()  # type: ignore[arg-type]
    except (KeyError, ValueError):  # no COMP_WORDS, a COMP_CWORD that is no number
        return []
    return list(args)


# ---- the completers (typer's `autocompletion=`: called with the context and the word so far) ---


def complete_profile(ctx: typer.Context, incomplete: str) -> list[str]:
    """The config file's profile names (--config on the line, else $CACHECTL_CONFIG, else the
    file every command would read)."""
    from cachectl.config import profile_names

    try:
        names = profile_names(ctx.find_root().params.get("config"))
    except Exception:  # noqa: BLE001 -- no file, a file that does not parse: nothing to offer
        return []
    return [name for name in names if name.startswith(incomplete)]


def complete_tag(ctx: typer.Context, incomplete: str) -> list[str]:
    """Tag set names in Redis."""
    return _set_names(ctx, incomplete, "tag")


def complete_dependency(ctx: typer.Context, incomplete: str) -> list[str]:
    """Dependency set names (resource ids) in Redis."""
    return _set_names(ctx, incomplete, "dependency")


def complete_tag_or_dependency(ctx: typer.Context, incomplete: str) -> list[str]:
    """`tags show`'s TAG: a tag, or with --dependencies (-d) before it, a resource id."""
    kind = "dependency" if ctx.params.get("dependencies") else "tag"
    return _set_names(ctx, incomplete, kind)


def complete_tags_pattern(ctx: typer.Context, incomplete: str) -> list[str]:
    """`tags [PATTERN]`: click completes the group's argument, not its subcommands, so `show`
    is offered here, then the set names (each a glob matching itself; those with glob
    characters are left out)."""
    kind = "dependency" if ctx.params.get("dependencies") else "tag"
    names = [n for n in _set_names(ctx, incomplete, kind) if not any(c in "*?[]" for c in n)]
    return (["show"] if "show".startswith(incomplete) else []) + names


def complete_manifest_endpoint(ctx: typer.Context, incomplete: str) -> list[str]:
    """The endpoint names of the manifests named before the cursor (`warm a.yaml --endpoint`),
    read (not checked) within the same budget as a Redis lookup."""
    # click leaves FILE... unset when it stops at the option being completed: then the words of
    # the line that are files (a --report file among them has no `endpoints:`, and adds none).
    files = [str(f) for f in ctx.params.get("files") or ()] or [
        word for word in words_before_cursor() if not word.startswith("-") and os.path.isfile(word)
    ]
    if not files:
        return []
    try:  # imported here, not in the budget: it is the files' reading that may take long
        import yaml  # noqa: F401

        from cachectl.errors import ManifestError
        from cachectl.yamlsrc import load_yaml
    except Exception:  # noqa: BLE001 -- a broken install: nothing to offer, nothing said
        return []

    def lookup(found: list[str]) -> None:
        for file in files:
            endpoints = load_yaml(file, kind=ManifestError).get(("endpoints",))
            for endpoint in endpoints if isinstance(endpoints, list) else ():
                name = endpoint.get("name") if isinstance(endpoint, dict) else None
                if isinstance(name, str) and name.startswith(incomplete) and _plain(name):
                    found.append(name)

    return sorted(set(_within_budget(lookup)))


# ---- the Redis lookup -------------------------------------------------------------------------


def _set_names(ctx: typer.Context, incomplete: str, kind: str) -> list[str]:
    settings = _configured_settings(ctx)
    if settings is None:
        return []
    try:
        from cachectl.layout import Layout
        from cachectl.ops.tags import set_names_starting_with
        from cachectl.store import Store
    except Exception:  # noqa: BLE001 -- a broken install: nothing to offer, nothing said
        return []
    layout = Layout(settings.layout)

    def lookup(found: list[str]) -> None:
        with Store(settings, on_warning=lambda code, message: None) as store:
            names = set_names_starting_with(
                store, layout, incomplete, dependencies=kind == "dependency", count=SCAN_COUNT
            )
            for name in names:
                if _plain(name):
                    found.append(name)
                    if len(found) > MAX_CANDIDATES:
                        raise _TooMany

    return sorted(set(_within_budget(lookup)))


class _TooMany(Exception):
    pass


def _configured_settings(ctx: typer.Context) -> Settings | None:
    """The settings of the command line so far, with completion's timeouts and no retries; None
    when no connection is configured (the URL would be the default) or they do not resolve."""
    import dataclasses

    from cachectl.cli.context import AppContext

    try:
        settings = AppContext.from_root_params(ctx.find_root().params).settings
    except Exception:  # noqa: BLE001 -- a bad config file or flag: the command will say so
        return None
    if settings.sources.get("url", "default") == "default":
        return None
    budget = lookup_budget()
    return dataclasses.replace(settings, connect_timeout=budget, timeout=budget, retries=0)


def _within_budget(lookup: Callable[[list[str]], None]) -> list[str]:
    """What `lookup` found, if it finished within lookup_budget() seconds without an error; else
    nothing. It runs in a daemon thread, so a lookup stuck where no socket timeout reaches (a
    slow DNS answer) is left behind when the process ends."""
    import threading

    found: list[str] = []
    finished: list[bool] = []

    def run() -> None:
        try:
            lookup(found)
        except BaseException:  # noqa: BLE001 -- every failure offers nothing, and says nothing
            return
        finished.append(True)

    thread = threading.Thread(target=run, name="cachectl-completion", daemon=True)
    thread.start()
    thread.join(lookup_budget())
    return list(found) if finished else []


def _plain(name: str) -> bool:
    """A name a shell can take as one word as it is: no whitespace, no control characters, no
    backslash (a name with any is left out rather than offered broken)."""
    return bool(name) and name.isprintable() and not any(c.isspace() or c == "\\" for c in name)
