"""Turn core results into what Dagster shows: materialization metadata, check results, previews, lineage."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.ingest.process import BatchReport
from mm_platform.lake import CheckResult, PublishResult, Snapshot
from mm_platform.lake.publish_log import LogEntry
from mm_platform.serve.links import item_url, snapshot_url
from mm_platform.tables import DERIVED, EMBEDDINGS, MEDIA, METADATA, QUARANTINE

# Which asset shows the checks about which table.
TABLE_ASSETS = {
    MEDIA.name: "raw_media",
    QUARANTINE.name: "raw_media",
    METADATA.name: "media_metadata",
    DERIVED.name: "derived_media",
    EMBEDDINGS.name: "embeddings",
}
ASSET_TABLES = {
    "raw_media": MEDIA.name,
    "media_metadata": METADATA.name,
    "derived_media": DERIVED.name,
    "embeddings": EMBEDDINGS.name,
}


def check_result(result: CheckResult, asset: str, partition: str) -> dg.AssetCheckResult:
    """A check result; Dagster keeps checks per asset, not per partition, so the batch is in its metadata."""
    failing = [dict(row) for row in result.failing_rows][:10]
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=result.name,
        passed=result.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=result.detail or None,
        metadata={
            "partition": partition,
            "table": result.table or "",
            "detail": result.detail,
            "failing_rows": dg.MetadataValue.json(failing) if failing else dg.MetadataValue.text("none"),
        },
    )


def staged_metadata(report: BatchReport, asset: str) -> dict[str, Any]:
    table = ASSET_TABLES[asset]
    metadata: dict[str, Any] = {
        "dagster/row_count": report.rows.get(table, 0),
        "stage_id": report.stage.stage_id if report.stage else "",
        "seconds": round(report.timings_s.get("process", 0.0), 3),
    }
    if asset == "raw_media":
        metadata.update(
            objects=report.objects,
            analyzed=report.analyzed,
            reused=report.reused,
            quarantined=report.quarantined,
            quarantine_reasons=dg.MetadataValue.json(report.reasons),
        )
    if asset == "embeddings":
        metadata.update(
            model_calls=dg.MetadataValue.json(report.model_calls),
            items_embedded=dg.MetadataValue.json(report.items_embedded),
        )
    return metadata


def _markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, ""))[:60].replace("|", "\\|") for c in columns) + " |")
    return "\n".join(lines)


def thumbnails_markdown(snapshot: Snapshot, partition: str, limit: int = 8) -> str:
    """Inline thumbnails of the batch (data URIs), so the UI shows what was ingested."""
    thumbs = snapshot.table(
        DERIVED.name,
        columns=["media_id", "data"],
        filter=(pc.field("kind") == "thumbnail") & (pc.field("partition") == partition),
    ).slice(0, limit)
    cells = [
        f"![{row['media_id'][:8]}](data:image/jpeg;base64,{base64.b64encode(row['data']).decode()})"
        for row in thumbs.to_pylist()
        if row["data"]
    ]
    return " ".join(cells) or "_no thumbnails in this batch_"


def column_lineage() -> dg.TableColumnLineage:
    """Which columns of the published tables come from which upstream columns."""
    dep = dg.TableColumnDep
    return dg.TableColumnLineage(
        deps_by_column={
            "media.content_sha256": [dep(asset_key=dg.AssetKey("raw_media"), column_name="content_sha256")],
            "metadata.content_sha256": [dep(asset_key=dg.AssetKey("raw_media"), column_name="content_sha256")],
            "derived.source_content_sha256": [
                dep(asset_key=dg.AssetKey("media_metadata"), column_name="content_sha256")
            ],
            "embeddings.source_content_sha256": [dep(asset_key=dg.AssetKey("raw_media"), column_name="content_sha256")],
            "embeddings.vector": [
                dep(asset_key=dg.AssetKey("derived_media"), column_name="data"),
                dep(asset_key=dg.AssetKey("media_metadata"), column_name="text"),
            ],
        }
    )


def browser_links(browser_url: str, snapshot: Snapshot, media: pa.Table, limit: int = 10) -> dict[str, Any]:
    """Links into the lake browser (``mmp serve``): the snapshot's changes and the batch's first items (by object
    key), as URL metadata, which the UI shows as links in the materialization's metadata table."""
    links: dict[str, Any] = {"browser_snapshot": dg.MetadataValue.url(snapshot_url(browser_url, snapshot.seq))}
    rows = media.slice(0, limit).to_pylist()
    for row in rows:
        url = item_url(browser_url, row["media_id"], snapshot.seq)
        links[f"browser_item: {row['key']}"[:120]] = dg.MetadataValue.url(url)
    return links


def publish_metadata(
    result: PublishResult, snapshot: Snapshot, partition: str, *, browser_url: str | None = None
) -> dict[str, Any]:
    media = snapshot.table(
        MEDIA.name,
        columns=["media_id", "key", "mime_type", "modality", "size_bytes", "status"],
        filter=pc.field("partition") == partition,
    )
    links = browser_links(browser_url, snapshot, media) if browser_url else {}
    media = media.drop_columns(["media_id"])
    return {
        "branch": snapshot.branch or "main",
        **links,
        "publish_seq": result.seq,
        "noop": result.noop,
        "table_versions": dg.MetadataValue.json(dict(result.table_versions)),
        "row_counts": dg.MetadataValue.json(dict(result.row_counts)),
        "preview": dg.MetadataValue.md(_markdown_table(media.slice(0, 20).to_pylist(), media.column_names)),
        "thumbnails": dg.MetadataValue.md(thumbnails_markdown(snapshot, partition)),
        "dagster/column_lineage": column_lineage(),
        "dagster/row_count": int(pa.compute.sum(pa.array(list(result.row_counts.values()) or [0])).as_py() or 0),
    }


def superseded_metadata(winner: LogEntry) -> dict[str, Any]:
    """A publish step that found its partition published by another run (its own stage is dropped)."""
    return {
        "publish_seq": winner.publish_seq,
        "noop": True,
        "superseded_by_run": winner.run_id or "",
        "table_versions": dg.MetadataValue.json(dict(winner.table_versions)),
    }
