"""`cachectl invalidate`: delete exactly the selected cache entries, fast and gently.

How a run goes:
- A producer thread finds the entries (exact keys, then tag and dependency sets, then SCAN
  MATCH over every primary), keeps only cache entries, drops repeats and applies the filters
  (pipelined PTTL, OBJECT IDLETIME, ZMSCORE on the write log, MEMORY USAGE). The main thread
  deletes what it hands over (a bounded queue between them), so scanning and deleting overlap:
  UNLINK in pipelined batches grouped by slot, with the keys' ZREM from the write and access
  logs in the same round trip.
- A whole tag or dependency set is taken atomically: RENAMENX to a pending name in the same hash
  slot, so a write that lands during the run goes to a fresh set. Nobody writes to the pending
  set; it is read a SSCAN page at a time (no SMEMBERS stall), its entries deleted in batches,
  and it is UNLINKed only after the last of them. A crash or Ctrl-C leaves it whole, and a rerun
  of the same command finds it (its name is fixed) and goes through it first; entries already
  deleted then count as already gone.
- With filters, a set is not taken whole: its matching entries are deleted and then SREMed
  from it (only those still gone: see `prune.drop_dangling`).
- Entries found by a pattern or an endpoint scan are then swept out of every tag and dependency
  set that names them, unless the caller skips it; after exact keys or sets only when asked
  (`index_cleanup="sweep"`). The sets are found by a `SCAN ... TYPE set` walk afterwards;
  members that the scans select and whose entry is gone go too, so the rerun of an interrupted
  run also finishes the cleanup its first run did not get to.
- A server that restarts during a run may come back with data (an RDB or AOF file loaded, a
  replica that lags promoted) holding entries the run had already deleted, and SCAN's cursor
  means nothing to it (its hash seed changes). So a run compares every primary's run_id at the
  start and the end of its pass over the selection; when one changed, it goes through the whole
  selection again, with its de-duplication started afresh, and only a pass that saw no restart
  ends the run as done. A tag whose pending set vanished with the restart is taken again from
  its live set.
"""

from cachectl.ops.invalidate.results import (
    InvalidateOptions,
    InvalidateProgress,
    InvalidateResult,
    closest_set_names,
    missing_set_text,
)
from cachectl.ops.invalidate.run import check_permissions, invalidate, permission_probes, preview

__all__ = [
    "InvalidateOptions",
    "InvalidateProgress",
    "InvalidateResult",
    "check_permissions",
    "closest_set_names",
    "invalidate",
    "missing_set_text",
    "permission_probes",
    "preview",
]
