"""The publish log events that close or stand beside a publish: ``published`` / ``aborted`` for an intent
(appended once, whichever process gets there first), and a ``rejected`` that claims no sequence number."""

from __future__ import annotations

from collections.abc import Mapping

from mm_platform.errors import PublishConflictError
from mm_platform.lake import faults
from mm_platform.lake.publish_log import ABORTED, PUBLISHED, LogEntry, PublishLog
from mm_platform.lake.table_commit import backoff
from mm_platform.log import get_logger, kv

log = get_logger("mm_platform.lake.publish")


def append_terminal(publish_log: PublishLog, intent: LogEntry, event: str, versions: Mapping[str, int]) -> LogEntry:
    """Close an intent with its ``published`` (pinning ``versions``) or ``aborted`` event, exactly once."""
    seq = intent.publish_seq
    for attempt in range(1, 200):
        state = publish_log.load()
        for terminal in (PUBLISHED, ABORTED):
            existing = state.find(terminal, seq=seq)
            if existing is not None:
                return existing
        previous = state.latest_published()
        pinned = dict(previous.table_versions) if previous else {}
        if event == PUBLISHED:
            pinned.update(versions)
        entry = LogEntry(
            event=event,
            kind=intent.kind,
            publish_seq=seq,
            partition=intent.partition,
            stage_id=intent.stage_id,
            table_versions=pinned,
            row_counts=intent.row_counts,
            checks=intent.checks,
            message=intent.message,
            run_id=intent.run_id,
            code_version=intent.code_version,
            audit=intent.audit,
        )
        new_state = publish_log.try_append(entry, state)
        if new_state is not None:
            log.info("%s %s", event, kv(seq=seq, partition=intent.partition, versions=dict(pinned)))
            faults.fault_point(f"after_{event}")
            return new_state.entries[-1]
        backoff(attempt)
    raise PublishConflictError(f"publish {seq}: could not append its {event} event", hint="run `mmp status`")


def append_unordered(publish_log: PublishLog, entry: LogEntry) -> None:
    """Append an event that claims no sequence number (a rejection), retrying lost races."""
    for attempt in range(1, 200):
        if publish_log.try_append(entry, publish_log.load()) is not None:
            return
        backoff(attempt)
