"""``mmp search`` and ``mmp lineage`` (registered on the ``mmp`` group at the end of ``cli.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import click

__all__ = ["lineage_command", "search_command"]

from mm_platform.cli.common import audit_options, handle_errors, open_lake
from mm_platform.lake import Lake


@click.command("search")
@click.argument("text", required=False)
@click.option("--image", "image", default=None, metavar="PATH|s3://BUCKET/KEY", help="Query by image.")
@click.option("--k", "k", type=click.IntRange(1, 1000), default=10, show_default=True, help="Number of results.")
@click.option(
    "--where",
    default=None,
    help="Filter on media, metadata and label columns: \"modality = 'image' and width > 400\", \"label = 'cat'\".",
)
@click.option("--snapshot", "seq", type=int, default=None, help="Search this snapshot (default: the latest).")
@click.option("--image-model", default=None, help="Embedder spec of the image vectors to search (default: active).")
@click.option("--text-model", default=None, help="Embedder spec of the document vectors to search (default: active).")
@click.option("--columns", default="", help="Extra metadata columns to show, comma-separated.")
@click.option(
    "--fusion",
    type=click.Choice(["auto", "scale", "rrf", "group"]),
    default="auto",
    show_default=True,
    help="How results of different models combine: scale (one model's space), rrf (ranks), group (per model).",
)
@click.option("--thumbnails", "thumb_dir", type=click.Path(file_okay=False, path_type=Path), help="Write JPEGs here.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (thumbnails as sizes).")
@audit_options
@click.pass_context
@handle_errors
def search_command(
    ctx: click.Context,
    text: str | None,
    image: str | None,
    k: int,
    where: str | None,
    seq: int | None,
    image_model: str | None,
    text_model: str | None,
    columns: str,
    fusion: str,
    thumb_dir: Path | None,
    as_json: bool,
) -> None:
    """The K media most similar to TEXT (or to --image PATH or s3://BUCKET/KEY) in one snapshot."""
    from mm_platform.search import search  # imported here: `mmp status` should not pay for it
    from mm_platform.search.query_image import read_query_image
    from mm_platform.sources import S3Settings

    if (text is None) == (image is None):
        raise click.UsageError("give either a TEXT query or --image PATH")
    extra = [c.strip() for c in columns.split(",") if c.strip()]
    lake = open_lake(ctx)
    settings = S3Settings.from_env(ctx.obj["env"])
    query: str | Path | bytes = text if text is not None else read_query_image(cast(str, image), settings)
    hits = search(
        lake,
        query,
        k=k,
        where=where,
        seq=seq,
        image_model=image_model,
        text_model=text_model,
        columns=extra,
        thumbnails=thumb_dir is not None or as_json,  # the text listing does not show them; reading costs
        fusion=fusion,
    )
    if thumb_dir is not None:
        thumb_dir.mkdir(parents=True, exist_ok=True)
        for hit in hits:
            if hit.thumbnail:
                (thumb_dir / f"{hit.rank:03d}-{hit.media_id}.jpg").write_bytes(hit.thumbnail)
    if as_json:
        click.echo(json.dumps([h.to_dict() for h in hits], indent=2, default=str))
        return
    if not hits:
        click.echo("no results")
        return
    routes = sorted({f"{h.route} ({h.model_id})" for h in hits})
    click.echo(f"snapshot {_searched_seq(lake, seq)}, {_FUSION_TEXT[hits[0].fusion]}: " + ", ".join(routes))
    group = None
    for hit in hits:
        if hit.fusion == "group" and group != (hit.route, hit.model_id):
            group = (hit.route, hit.model_id)
            click.echo(f"-- {hit.route} ({hit.model_id}): scores in this model's scale")
        shown = {c: v for c, v in hit.metadata.items() if v is not None}
        meta = " ".join(f"{c}={v}" for c, v in shown.items() if c in ("width", "height", "duration_s", *extra))
        labels = sorted({str(a["label"]) for a in hit.annotations if a.get("label")})
        meta += f" labels={','.join(labels)}" if labels else ""
        click.echo(f"{hit.rank:>3}  {hit.score:7.3f}  {hit.route:<12} {str(hit.modality):<9} {hit.key}  {meta}")


_FUSION_TEXT = {
    "single": "one model",
    "scale": "models interleaved on one model's cosine scale",
    "rrf": "scores of different models are not comparable: ranks fused (reciprocal rank fusion)",
    "group": "scores of different models are not comparable: grouped by model",
}


def _searched_seq(lake: Lake, seq: int | None) -> int:
    return seq if seq is not None else lake.snapshot().seq


@click.command("lineage")
@click.argument("ref", metavar="URI|MEDIA_ID|KEY")
@click.option("--model", "model_id", default=None, help="REF is an embedding's subject id: trace that vector.")
@click.option("--snapshot", "seq", type=int, default=None, help="Read this snapshot (default: the latest).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@audit_options
@click.pass_context
@handle_errors
def lineage_command(ctx: click.Context, ref: str, model_id: str | None, seq: int | None, as_json: bool) -> None:
    """Where a media object's rows came from: source version → metadata → derived → embeddings → snapshots."""
    from mm_platform.lineage import embedding_lineage, media_lineage

    lake = open_lake(ctx)
    if model_id is not None:
        traced = embedding_lineage(lake, ref, model_id, seq=seq)
        if as_json:
            click.echo(json.dumps(traced.to_dict(), indent=2, default=str))
            return
        e, s = traced.embedding, traced.source
        click.echo(f"embedding  {e.row_id} by {e.details['model_id']} @ {e.details['model_revision']}")
        click.echo(f"  run {e.run_id}, partition {e.partition}, publish {e.publish_seq}")
        if traced.subject is not None:
            click.echo(f"subject    {traced.subject.details.get('kind')} #{traced.subject.details.get('ordinal')}")
        click.echo(f"bytes      {s.uri} sha256={s.content_sha256} etag={s.etag} version={s.version_id}")
        click.echo(f"matches    {'yes' if traced.content_matches else 'NO: computed from other bytes (stale)'}")
        return
    lineage = media_lineage(lake, ref, seq=seq)
    if as_json:
        click.echo(json.dumps(lineage.to_dict(), indent=2, default=str))
        return
    s = lineage.source
    click.echo(f"media      {s.media_id}  {s.uri}  ({s.modality}, {s.status})")
    click.echo(f"  source   etag={s.etag} version={s.version_id} sha256={s.content_sha256} size={s.size_bytes}")
    click.echo(f"  run {s.run_id}, partition {s.partition}")
    for row in [lineage.metadata, lineage.quarantine, *lineage.derived, *lineage.embeddings]:
        if row is None:
            continue
        what = " ".join(f"{k}={v}" for k, v in row.details.items() if v is not None and k != "media_id")
        stale = "" if row.matches_content else "  STALE (other bytes)"
        click.echo(
            f"{row.table:<10} {row.producer}@{row.producer_version} run={row.run_id} "
            f"partition={row.partition} publish={row.publish_seq} {what}{stale}"
        )
    seqs = ", ".join(str(p.seq) for p in lineage.snapshots)
    click.echo(f"snapshots  {seqs or 'none'}")
    if len(lineage.versions) > 1:  # overwritten: say which snapshots held which bytes
        for version in lineage.versions:
            held = ", ".join(map(str, version.seqs))
            word = "snapshot" if len(version.seqs) == 1 else "snapshots"
            what = "these bytes" if version.current else "other bytes"
            click.echo(
                f"  {word} {held} held {what}: sha256={version.content_sha256} etag={version.etag} ({version.status})"
            )
