"""What an invalidate run reports: its progress, its result, its options."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from cachectl.errors import (
    CachectlError,
    NotFoundError,
    RedisError,
)
from cachectl.layout import Layout

if TYPE_CHECKING:
    from cachectl.store import Pacer, Store


# A missing set's closest existing names come from a sample of the sets: at most this many
# SCAN calls (of --count keys each), and of names.
CLOSEST_SCAN_CALLS = 20
CLOSEST_NAMES_SAMPLED = 10_000


# --- results ---------------------------------------------------------------------------------


@dataclass
class InvalidateProgress:
    phase: str  # "deleting" | "cleaning indexes"
    scanned: int  # keys SCAN walked over (estimated from COUNT) plus set members read
    scan_total: int | None  # keys in the database, for a bar; None without a scan
    matched: int
    deleted: int  # including entries a restarted server brought back and deleted again
    elapsed_seconds: float
    attempt: int = 1  # the pass over the selection: more than 1 after a server restart


@dataclass
class InvalidateResult:
    """What a run did. `matched` counts distinct selected entries after filters;
    matched = deleted + already_gone (+ what an interruption or failure left undone)."""

    selection: list[str] = field(default_factory=list)
    filters: dict = field(default_factory=dict)
    dry_run: bool = False
    matched: int = 0
    deleted: int = 0
    already_gone: int = 0  # selected, but expired or deleted by someone else first
    deleted_again: int = 0  # deleted, brought back by a server restart, deleted again
    not_entries_skipped: int = 0  # keys a --force pattern or a set named that are not entries
    sets_deleted: int = 0
    sets_updated: int = 0
    log_members_removed: int = 0
    index_cleanup: str = "not needed"  # "swept" | "skipped" | "not needed" | "not finished"
    # Entries deleted while the cleanup was skipped: each may be left as a dangling member of
    # other tag and dependency sets (which ones only a walk of the keyspace can tell).
    unswept_entries: int = 0
    scanned: int = 0
    pending_sets: list[str] = field(default_factory=list)  # left half done: rerun to finish
    # Named tag and dependency sets that do not exist: {"kind", "name", "key", "closest"}.
    missing_sets: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False
    duration_seconds: float = 0.0
    failure: CachectlError | None = None

    @property
    def changed(self) -> bool:
        """Whether the run changed anything (a failure then exits 6, not 4)."""
        return bool(
            self.deleted
            or self.deleted_again
            or self.sets_deleted
            or self.sets_updated
            or self.pending_sets
            or self.log_members_removed
        )

    @property
    def nothing_matched(self) -> bool:
        """No selected entry existed: nothing was (or would be) deleted."""
        if self.dry_run:
            return self.matched == 0
        return self.deleted + self.deleted_again == 0

    def strict_problem(self) -> NotFoundError | None:
        """What --strict turns into exit 5 (not found): a named set that does not exist, or a
        selection that matched nothing. None when neither."""
        if self.missing_sets:
            first, more = self.missing_sets[0], len(self.missing_sets) - 1
            also = f" (nor {more} more named set{'s' if more > 1 else ''})" if more else ""
            return NotFoundError(
                missing_set_text(first) + also,
                hint="--strict makes a missing set an error",
                details={"missing_sets": self.missing_sets},
            )
        if self.nothing_matched:
            done = "nothing would be deleted" if self.dry_run else "nothing was deleted"
            return NotFoundError(
                f"nothing matched {'; '.join(self.selection)}: {done}",
                hint="--strict makes a selection that matches nothing an error",
            )
        return None

    @property
    def keys_per_second(self) -> float:
        return self.deleted / self.duration_seconds if self.duration_seconds > 0 else 0.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out["duration_seconds"] = round(self.duration_seconds, 3)
        out["keys_per_second"] = round(self.keys_per_second, 1)
        out["failure"] = self.failure.to_dict() if self.failure else None
        return out


def missing_set_text(missing: dict) -> str:
    """One line on a named set that does not exist (an entry of `missing_sets`)."""
    kind = missing["kind"]
    text = f"{kind} set {missing['key']} does not exist: nothing is cached under it"
    if missing["closest"]:
        text += f"; closest existing {kind} names: {', '.join(missing['closest'])}"
    return text


def closest_set_names(
    store: Store, layout: Layout, kind: str, name: str, pacer: Pacer | None = None
) -> list[str]:
    """Up to 3 existing tag (or dependency) names closest to `name`, from a bounded sample of
    the sets (CLOSEST_SCAN_CALLS SCANs): a hint, so a Redis error means no names."""
    import difflib

    prefix = (layout.config.tag_prefix if kind == "tag" else layout.config.dependency_prefix) + ":"
    pattern = layout.tag_pattern() if kind == "tag" else layout.dependency_pattern()
    names: list[str] = []
    try:
        for calls, (_node, keys) in enumerate(
            store.scan_nodes(match=pattern, type="set", pacer=pacer), start=1
        ):
            names += [
                k[len(prefix) :].decode("utf-8", "backslashreplace")
                for k in keys
                if not layout.is_pending_set(k)
            ]
            if calls >= CLOSEST_SCAN_CALLS or len(names) >= CLOSEST_NAMES_SAMPLED:
                break
    except RedisError:
        return []
    return difflib.get_close_matches(name, list(dict.fromkeys(names)), n=3, cutoff=0.6)


@dataclass
class InvalidateOptions:
    scan_count: int = 1000
    batch_size: int = 1000
    rate: float | None = None  # keys per second, for SCAN's walk and for deletes alike
    index_cleanup: str = "auto"  # auto | sweep | skip: see _Deleter.cleanup_wanted
