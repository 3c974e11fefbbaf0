"""Every error cachectl reports, each with its exit status and a stable machine code.

The exit-code table lives here and nowhere else; the CLI applies it in one place
(`cachectl.cli.app.CachectlGroup`); docs/reference/exit-codes.md documents it.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1  # a bug in cachectl: the traceback is worth reporting
    USAGE = 2  # wrong flags or arguments; a destructive command with no terminal and no --yes
    BAD_INPUT = (
        3  # config file missing or invalid (or no such profile), manifest invalid, env var unset
    )
    REDIS = 4  # Redis unreachable, auth refused, ACL denied, timeout, cluster down...
    NOT_FOUND = 5  # the key, tag or set asked for does not exist
    PARTIAL = 6  # the job ran but some of it failed (warm failures, a scan cut short)
    CHECK_FAILED = 7  # `cachectl check`: a threshold was breached
    INTERRUPTED = 130  # Ctrl-C
    CLOSED_PIPE = 141  # stdout's reader went away (`| head`): 128 + SIGPIPE, as a shell reports it


EXIT_CODE_MEANINGS: dict[int, str] = {
    ExitCode.OK: "success",
    ExitCode.INTERNAL: "internal error (a bug: rerun with --traceback and report it)",
    ExitCode.USAGE: "usage error: bad flags or arguments, or a destructive command "
    "run without a terminal and without --yes",
    ExitCode.BAD_INPUT: "bad input: a config file that is missing or invalid or has no such "
    "profile, an invalid manifest or graph file, an unset environment variable",
    ExitCode.REDIS: "Redis error: unreachable, authentication, ACL permission, timeout, "
    "read-only replica, cluster down",
    ExitCode.NOT_FOUND: "not found: the key, tag or set asked for does not exist",
    ExitCode.PARTIAL: "partial failure: the job ran but part of it failed",
    ExitCode.CHECK_FAILED: "a `cachectl check` condition failed",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C), or a confirmation question not answered yes",
    ExitCode.CLOSED_PIPE: "the output's reader went away (`| head`): cachectl stopped there, "
    "quietly, as a tool killed by SIGPIPE does",
}


class CachectlError(Exception):
    """An error cachectl reports as one line, with an exit status and a machine code.

    `message` is the one line people see; `hint` an optional second sentence telling
    them what to do. Neither ever holds a secret: callers mask URLs before building one.
    """

    exit_code: int = ExitCode.INTERNAL
    code: str = "internal"

    def __init__(self, message: str, *, hint: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details or {}

    def to_dict(self) -> dict:
        out = {"code": self.code, "message": self.message, "exit_code": int(self.exit_code)}
        if self.hint:
            out["hint"] = self.hint
        if self.details:
            out["details"] = self.details
        return out

    def __str__(self) -> str:
        return self.message


class UsageError(CachectlError):
    exit_code = ExitCode.USAGE
    code = "usage"


class ConfirmationRequired(UsageError):
    """A destructive command with no terminal to ask on and no --yes."""

    code = "usage.confirmation_required"


class BadInputError(CachectlError):
    exit_code = ExitCode.BAD_INPUT
    code = "bad_input"


class ConfigError(BadInputError):
    code = "config"


class ManifestError(BadInputError):
    """A manifest with one or more problems; `problems` lists them all."""

    code = "manifest"

    def __init__(self, message: str, *, problems: list[str] | None = None, **kw):
        super().__init__(message, **kw)
        self.problems = problems or []
        if self.problems:
            self.details.setdefault("problems", self.problems)


class EnvVarMissing(BadInputError):
    code = "env_missing"


class RedisError(CachectlError):
    exit_code = ExitCode.REDIS
    code = "redis"


class RedisUnreachable(RedisError):
    code = "redis.unreachable"


class RedisAuthError(RedisError):
    code = "redis.auth"


class RedisPermissionError(RedisError):
    """The ACL user may not run a command; `command` names it."""

    code = "redis.permission"

    def __init__(self, message: str, *, command: str | None = None, **kw):
        super().__init__(message, **kw)
        self.command = command
        if command:
            self.details.setdefault("command", command)


class RedisTimeout(RedisError):
    code = "redis.timeout"


class RedisReadOnly(RedisError):
    code = "redis.read_only"


class RedisOutOfMemory(RedisError):
    """A write refused with OOM: `maxmemory` reached and nothing the policy may evict (noeviction,
    or a volatile-* policy with no key that has a TTL)."""

    code = "redis.oom"


class RedisClusterDown(RedisError):
    code = "redis.cluster_down"


class RedisTLSError(RedisError):
    code = "redis.tls"


class NotFoundError(CachectlError):
    exit_code = ExitCode.NOT_FOUND
    code = "not_found"


class PartialFailure(CachectlError):
    """The job ran but part of it failed. `result` is the job's result dataclass, if any."""

    exit_code = ExitCode.PARTIAL
    code = "partial"

    def __init__(self, message: str, *, result=None, **kw):
        super().__init__(message, **kw)
        self.result = result


class RedisFull(PartialFailure):
    """A job that writes stopped because Redis refused its writes for lack of memory: what was
    done before stands, the rest was not attempted (exit 6, not 4: Redis is there and answers)."""

    code = "partial.redis_full"


class CheckFailed(CachectlError):
    exit_code = ExitCode.CHECK_FAILED
    code = "check_failed"


class Interrupted(CachectlError):
    exit_code = ExitCode.INTERRUPTED
    code = "interrupted"
