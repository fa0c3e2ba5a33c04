"""When to compact the receiver's journal: one decision, kept out of the receiver's core.

The live journal is replayed at every start, so its size is the start-up time. It is compacted
when it grows past ``--journal-max-bytes``: the policy's snapshot (records whose replay rebuilds
its state) replaces it, the history goes to a gzip archive (:meth:`Journal.compact`).

A snapshot can itself be large (many pending runs, many recently handled fingerprints); the
trigger is then twice the size of the last snapshot, so the journal is never compacted on
every append. A failed compaction is logged, never raised: the records that made the journal
grow are already written, and the webhook that wrote them must still get its 200. The journal
stays as it was (the old live file, whole) and the next append tries again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pflow_ops.receiver.journal import Journal
from pflow_ops.receiver.metrics import Metrics

Snapshot = Callable[[], list[dict[str, Any]]]


def _quiet(event: str, **fields: Any) -> None:
    """The default log: tests and tools that call :func:`maybe_compact` without a log line."""


def threshold(journal: Journal, max_bytes: int) -> int:
    """The size above which the live journal is compacted."""
    return max(max_bytes, 2 * journal.compacted_bytes)


def maybe_compact(
    journal: Journal,
    snapshot: Snapshot,
    max_bytes: int,
    *,
    metrics: Metrics | None = None,
    log: Callable[..., None] = _quiet,
) -> bool:
    """Compact ``journal`` to ``snapshot()`` when it is larger than its threshold.

    Call it where the journal and the state agree: under the receiver's lock, after an append
    batch and after the replay at start. True when it compacted.
    """
    before = journal.size_bytes()
    if before <= threshold(journal, max_bytes):
        return False
    try:
        archive = journal.compact(snapshot())
    except Exception as exc:  # a full disk, or a bug in the snapshot: the journal is intact
        log("journal_compaction_failed", bytes=before, error=f"{type(exc).__name__}: {exc}")
        return False
    if metrics is not None:
        metrics.inc("journal_compactions_total")
    log("journal_compacted", bytes=before, live_bytes=journal.size_bytes(), archive=archive.name)
    return True
