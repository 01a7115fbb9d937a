"""The reuse-copy step: results for contents seen before (published, or earlier in this batch) are copied
under the new media ids instead of being computed again."""

from __future__ import annotations

import pyarrow.compute as pc

from mm_platform.ingest.batch_state import BatchState
from mm_platform.ingest.reuse import ReuseIndex, group_by_content, rekey
from mm_platform.lake.stage_writer import StageWriter
from mm_platform.tables import METADATA, QUARANTINE

__all__ = ["copy_reused"]


def copy_reused(state: BatchState, reuse: ReuseIndex, writer: StageWriter) -> None:
    """Add the copied rows to ``state.out``; copies take their source's verdict."""
    if not state.copies:
        return
    published = group_by_content(reuse.rows_for(sha for sha in state.copies if sha not in state.analyzed_first))
    uri_of = state.uri_of()
    for sha, media_ids in state.copies.items():
        if sha in state.analyzed_first:
            first_id = state.analyzed_first[sha]
            first = pc.field("media_id") == first_id
            source_rows = {name: writer.read(name, first).to_pylist() for name in state.scope.copied}
            if first_id in state.media_status:
                for media_id in media_ids:
                    state.media_status[media_id] = state.media_status[first_id]
        else:
            source_rows = published.get(sha, {})
            if source_rows.get(QUARANTINE.name) and not source_rows.get(METADATA.name):
                for media_id in media_ids:
                    state.media_status[media_id] = "quarantined"
        for media_id in media_ids:
            for name, rows in rekey(source_rows, media_id, uri_of[media_id], state.partition).items():
                rows = state.scope.keep_copied(name, rows)
                state.out[name] += rows
                if name == QUARANTINE.name:
                    state.report.quarantined += len(rows)
