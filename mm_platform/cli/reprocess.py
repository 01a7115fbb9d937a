"""``mmp stale``, ``mmp reprocess`` and ``mmp activate-model``: change models without drift."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import click

from mm_platform.cli.common import audit_options, emit, handle_errors, open_lake
from mm_platform.config import PipelineConfig
from mm_platform.ingest.process import BatchProcessor
from mm_platform.sources import source_for

F = TypeVar("F", bound=Callable[..., Any])


def _processor(ctx: click.Context, image_model: str, text_model: str) -> BatchProcessor:
    return BatchProcessor(open_lake(ctx), PipelineConfig(image_model=image_model, text_model=text_model))


model_options = [
    click.option(
        "--image-model",
        default=PipelineConfig.image_model,
        show_default=True,
        help="efficientnet-lite0 or clip:<name or path>",
    ),
    click.option("--text-model", default=PipelineConfig.text_model, show_default=True, help="minilm or clip:<...>"),
]


def _with_models(func: F) -> F:
    for option in reversed(model_options):
        func = option(func)
    return func


@click.command("stale")
@_with_models
@click.option("--json", "as_json", is_flag=True)
@audit_options
@click.pass_context
@handle_errors
def stale_command(ctx: click.Context, image_model: str, text_model: str, as_json: bool) -> None:
    """How many rows per table the current models and extractors would produce differently, and why."""
    from mm_platform.reprocess import stale_report

    processor = _processor(ctx, image_model, text_model)
    items = stale_report(open_lake(ctx).snapshot(), processor.models())
    emit(as_json, [item.__dict__ for item in items], "\n".join(str(i) for i in items) or "nothing is stale")


@click.command("reprocess")
@_with_models
@click.option("--max-objects", type=int, default=500, show_default=True, help="Objects per batch (one publish each).")
@click.option("--json", "as_json", is_flag=True)
@audit_options
@click.pass_context
@handle_errors
def reprocess_command(ctx: click.Context, image_model: str, text_model: str, max_objects: int, as_json: bool) -> None:
    """Re-derive only what is stale, batch by batch, through the audit gate. New models' vectors are built
    beside the active ones; switch with `mmp activate-model`."""
    from mm_platform.quality import default_checks
    from mm_platform.reprocess import reprocess

    processor = _processor(ctx, image_model, text_model)
    checks = default_checks({e.model_id: e.dim for e in processor.embedders.values()})
    report = reprocess(
        open_lake(ctx),
        processor,
        partial(source_for, env=ctx.obj["env"]),
        run_id=f"reprocess-{uuid.uuid4().hex[:12]}",
        checks=checks,
        max_objects=max_objects,
    )
    seqs = [b.publish.seq for b in report.batches if b.publish]
    summary = {
        "reanalyzed": report.reanalyzed,
        "reembedded": report.reembedded,
        "publish_seqs": seqs,
        "model_calls": [b.model_calls for b in report.batches],
    }
    emit(
        as_json,
        summary,
        f"re-analysed {report.reanalyzed}, re-embedded {report.reembedded} object(s) "
        f"in {len(seqs)} publish(es)" + (f": snapshots {seqs}" if seqs else ""),
    )


@click.command("activate-model")
@click.argument("model_id")
@click.option("--role", type=click.Choice(["image", "text"]), default=None, help="Default: inferred from its vectors.")
@click.option("--json", "as_json", is_flag=True)
@audit_options
@click.pass_context
@handle_errors
def activate_model_command(ctx: click.Context, model_id: str, role: str | None, as_json: bool) -> None:
    """Make MODEL_ID the model search uses for its modality, in one publish (refused until it covers all)."""
    from mm_platform.reprocess import activate_model

    result = activate_model(open_lake(ctx), model_id, role=role)
    emit(as_json, {"seq": result.seq, "model": model_id}, f"published snapshot {result.seq}: {model_id} is active")
