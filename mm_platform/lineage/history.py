"""Lineage across snapshots, from the publish log: which publish made a partition visible, and which
snapshots contain a media row (and which version of the object each one holds)."""

from __future__ import annotations

from collections import defaultdict

import pyarrow.compute as pc

from mm_platform.lake import Lake, Snapshot
from mm_platform.lake.publish_log import LogState
from mm_platform.lineage.model import ObjectVersion, SnapshotPresence
from mm_platform.tables import MEDIA

__all__ = ["object_versions", "publish_seq_by_partition", "snapshots_with_media"]


def publish_seq_by_partition(state: LogState, up_to_seq: int) -> dict[str, int]:
    """For every partition, the latest publish (at or before ``up_to_seq``) that published it."""
    seqs: dict[str, int] = {}
    for entry in state.published():
        seq = entry.publish_seq
        if entry.partition is not None and seq is not None and seq <= up_to_seq:
            seqs[entry.partition] = max(seq, seqs.get(entry.partition, 0))
    return seqs


def snapshots_with_media(lake: Lake, media_id: str) -> list[SnapshotPresence]:
    """Every readable snapshot whose media table holds ``media_id``, oldest first.

    Snapshots pin table versions and many share the media table's version, so each distinct version is read
    once (with a pushed-down filter on the id), not once per snapshot.
    """
    by_version: dict[int, list[Snapshot]] = defaultdict(list)
    for snapshot in lake.snapshots():
        by_version[snapshot.version_of(MEDIA.name)].append(snapshot)
    found: list[SnapshotPresence] = []
    for version, snapshots in by_version.items():
        rows = (
            snapshots[0]
            .table(MEDIA.name, columns=["content_sha256", "etag", "status"], filter=pc.field("media_id") == media_id)
            .to_pylist()
        )
        if not rows:
            continue
        row = rows[0]
        found += [
            SnapshotPresence(
                seq=s.seq,
                kind=s.kind,
                partition=s.partition,
                published_at=s.published_at,
                media_table_version=version,
                content_sha256=row["content_sha256"],
                etag=row["etag"],
                status=row["status"],
            )
            for s in snapshots
        ]
    return sorted(found, key=lambda p: p.seq)


def object_versions(presences: list[SnapshotPresence], current_sha256: str | None) -> list[ObjectVersion]:
    """The distinct bytes the snapshots held, in order of first appearance, each with its snapshots."""
    versions: dict[str | None, list[SnapshotPresence]] = {}
    for presence in presences:
        versions.setdefault(presence.content_sha256, []).append(presence)
    return [
        ObjectVersion(
            content_sha256=sha,
            etag=held[-1].etag,
            seqs=[p.seq for p in held],
            current=sha == current_sha256,
            status=held[-1].status,
        )
        for sha, held in versions.items()
    ]
