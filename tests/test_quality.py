"""The quality gate (mm_platform.quality) on real pipeline rows: 3 images, a PDF and 2 malformed files from
../shared/media, processed by the real BatchProcessor and models. Their rows pass every Great Expectations
suite and cross-table check; each planted defect (NaN, wrong-length or non-unit vector, foreign content hash,
dangling media_id, unknown model, media without metadata, duplicate derived_id, oversized thumbnail, unknown
quarantine reason) fails exactly its own check, with a count in the detail and the offending key in
failing_rows; references into the published base snapshot resolve; the vector and reference checks handle
100k rows; and through ``Lake.publish`` one NaN vector publishes nothing and logs a ``rejected`` event."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from mm_platform.catalog import open_lake
from mm_platform.config import PipelineConfig
from mm_platform.errors import AuditFailedError
from mm_platform.ingest.process import BatchProcessor
from mm_platform.lake import AuditContext, CheckResult, Snapshot, TableWrite
from mm_platform.lake.audit import run_checks
from mm_platform.quality import (
    default_checks,
    embedding_vectors,
    embeddings_reference_media,
    gx_process,
    prepare_in_background,
)
from mm_platform.quality.expectations import SUITES, validate_table
from tests.factories import partition_rows

FILES = (
    "images/fruits.jpg",
    "images/orange.jpg",
    "images/pillow_hopper.jpg",
    "documents/crazyones.pdf",
    "malformed/empty.jpg",
    "malformed/pillow_broken.png",
)
TABLES = ("media", "metadata", "derived", "embeddings", "quarantine")
Rows = dict[str, pa.Table]


@dataclass
class Processed:
    rows: Rows
    """Every table's rows as the pipeline published them into lake A."""
    published: Snapshot
    """Lake A's snapshot (a base in which the rows are already published)."""
    empty: Snapshot
    """The empty snapshot of a fresh lake B (a base in which nothing is published)."""
    models: dict[str, int]
    """The configured models: id -> dim."""


@pytest.fixture(scope="module")
def processed(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processed]:
    root = tmp_path_factory.mktemp("quality")
    for name in FILES:
        (root / "media" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_media / name, root / "media" / name)
    from mm_platform.sources import LocalFolderSource

    lake = open_lake(str(root / "lake-a"))
    processor = BatchProcessor(lake, PipelineConfig(timeout_s=120))
    source = LocalFolderSource(root / "media")
    processor.run(source, list(source.list_objects()), "quality", "run-quality")
    snapshot = lake.snapshot()
    rows = {name: snapshot.table(name) for name in TABLES}
    models = {e.model_id: e.dim for e in processor.embedders.values()}
    yield Processed(rows, snapshot, open_lake(str(root / "lake-b")).snapshot(), models)


def _audit(rows: Rows, base: Snapshot, models: dict[str, int]) -> list[CheckResult]:
    return run_checks(AuditContext(partition="quality", staged=rows, base=base), default_checks(models))


def _failed(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results if not r.passed}


def test_real_pipeline_rows_pass_every_check(processed: Processed) -> None:
    counts = {name: table.num_rows for name, table in processed.rows.items()}
    assert all(counts.values()), counts  # every table has rows: media, metadata, derived, vectors, quarantine
    assert set(processed.rows["embeddings"].column("subject_kind").to_pylist()) == {"media", "derived"}
    results = _audit(processed.rows, processed.empty, processed.models)
    assert not _failed(results), [r.to_dict() for r in results if not r.passed]
    assert [r.name for r in results] == [
        "gx_media",
        "gx_metadata",
        "gx_derived",
        "gx_embeddings",
        "gx_quarantine",
        "media_has_metadata_or_quarantine",
        "embeddings_reference_media",
        "embedding_vectors_finite",
        "embedding_vector_dims",
        "embedding_vectors_unit_norm",
        "embedding_models",
        "validation_share",
    ]


def test_tables_without_staged_rows_pass(processed: Processed) -> None:
    empty = {name: table.slice(0, 0) for name, table in processed.rows.items()}
    assert not _failed(_audit(empty, processed.empty, processed.models))
    assert not _failed(_audit({}, processed.empty, processed.models))
    # What a passed check says must read as a pass: not "0 embeddings use configured models", not "1 rows".
    details = {r.name: r.detail for r in _audit(empty, processed.empty, processed.models)}
    assert details["embedding_models"] == "no embeddings staged in this batch: nothing to check"
    one = validate_table(SUITES["media"], processed.rows["media"].slice(0, 1))
    assert one.passed and one.detail.endswith("expectations met by 1 row")
    counted = {r.name: r.detail for r in _audit(processed.rows, processed.empty, processed.models)}
    assert counted["embedding_models"].startswith(f"all {processed.rows['embeddings'].num_rows} staged embeddings")


def test_embeddings_may_reference_media_published_in_the_base(processed: Processed) -> None:
    only_vectors = {"embeddings": processed.rows["embeddings"]}
    published = embeddings_reference_media(AuditContext("quality", only_vectors, processed.published))
    assert published.passed, published.detail
    nowhere = embeddings_reference_media(AuditContext("quality", only_vectors, processed.empty))
    total = processed.rows["embeddings"].num_rows
    assert not nowhere.passed and f"{total} of {total} embeddings point at a media_id" in nowhere.detail


# --- planted defects ---------------------------------------------------------------------------------------


def _edit(
    rows: Rows, table: str, pick: Callable[[dict[str, Any]], bool], change: Callable[[dict[str, Any]], Any]
) -> Any:
    """Change the first row of ``table`` that ``pick`` selects; returns that row's key as planted."""
    items = rows[table].to_pylist()
    index = next(i for i, row in enumerate(items) if pick(row))
    change(items[index])
    rows[table] = pa.Table.from_pylist(items, schema=rows[table].schema)
    return items[index]


def _any(row: dict[str, Any]) -> bool:
    return True


def _image_vector(row: dict[str, Any]) -> bool:
    return row["subject_kind"] == "media" and row["dim"] > 1000


def _nan(rows: Rows) -> tuple[str, str]:
    row = _edit(rows, "embeddings", _image_vector, lambda r: r["vector"].__setitem__(0, math.nan))
    return "subject_id", row["subject_id"]


def _short(rows: Rows) -> tuple[str, str]:
    row = _edit(rows, "embeddings", _image_vector, lambda r: r.update(vector=r["vector"][:-1]))
    return "subject_id", row["subject_id"]


def _not_unit(rows: Rows) -> tuple[str, str]:
    row = _edit(rows, "embeddings", _image_vector, lambda r: r.update(vector=[2 * v for v in r["vector"]]))
    return "subject_id", row["subject_id"]


def _other_bytes(rows: Rows) -> tuple[str, str]:
    row = _edit(rows, "embeddings", _any, lambda r: r.update(source_content_sha256="0" * 64))
    return "subject_id", row["subject_id"]


def _dangling(rows: Rows) -> tuple[str, str]:
    row = _edit(rows, "embeddings", _any, lambda r: r.update(media_id="media-that-exists-nowhere"))
    return "media_id", row["media_id"]


def _unknown_model(rows: Rows) -> tuple[str, str]:
    row = _edit(rows, "embeddings", _any, lambda r: r.update(model_id="mystery-model"))
    return "model_id", row["model_id"]


def _no_metadata(rows: Rows) -> tuple[str, str]:
    media_id = rows["metadata"].column("media_id")[0].as_py()
    rows["metadata"] = rows["metadata"].slice(1)
    return "media_id", media_id


def _duplicate_derived(rows: Rows) -> tuple[str, str]:
    rows["derived"] = pa.concat_tables([rows["derived"], rows["derived"].slice(0, 1)])
    return "derived_id", rows["derived"].column("derived_id")[0].as_py()


def _wide_thumbnail(rows: Rows) -> tuple[str, str]:
    row = _edit(rows, "derived", lambda r: r["kind"] == "thumbnail", lambda r: r.update(width=300))
    return "derived_id", row["derived_id"]


def _unknown_reason(rows: Rows) -> tuple[str, str]:
    row = _edit(rows, "quarantine", _any, lambda r: r.update(reason="gremlins"))
    return "media_id", row["media_id"]


PLANTED = [
    # (defect, the one check that must fail, words its detail must hold)
    (_nan, "embedding_vectors_finite", "1 of {n} embeddings have NaN or infinite values"),
    (_short, "embedding_vector_dims", "1 of {n} embeddings have len(vector) != dim"),
    (_not_unit, "embedding_vectors_unit_norm", "1 of {n} embeddings are not unit norm (max |‖v‖−1| = 1)"),
    (_other_bytes, "embeddings_reference_media", "1 of {n} embeddings were computed from other bytes"),
    (_dangling, "embeddings_reference_media", "1 of {n} embeddings point at a media_id that exists nowhere"),
    (_unknown_model, "embedding_models", "1 of {n} embeddings use unconfigured models ['mystery-model']"),
    (_no_metadata, "media_has_metadata_or_quarantine", "1 of 4 active media rows have no metadata row"),
    (_duplicate_derived, "gx_derived", "ExpectColumnValuesToBeUnique(derived_id): 2 of"),
    (_wide_thumbnail, "gx_derived", "ExpectColumnValuesToBeBetween(width) where kind in"),
    (_unknown_reason, "gx_quarantine", "ExpectColumnValuesToBeInSet(reason): 1 of 2 rows unexpected"),
]


@pytest.mark.parametrize(("plant", "check", "words"), PLANTED, ids=[p[0].__name__.strip("_") for p in PLANTED])
def test_a_planted_defect_fails_exactly_its_check(
    processed: Processed, plant: Callable[[Rows], tuple[str, str]], check: str, words: str
) -> None:
    rows = dict(processed.rows)
    key, value = plant(rows)
    failed = _failed(_audit(rows, processed.empty, processed.models))
    assert set(failed) == {check}, {name: r.detail for name, r in failed.items()}
    result = failed[check]
    assert words.format(n=processed.rows["embeddings"].num_rows) in result.detail, result.detail
    assert any(row.get(key) == value for row in result.failing_rows), result.failing_rows
    assert len(result.to_dict()["failing_rows"]) <= 10
    json.dumps(result.to_dict())  # failing rows are stored in the publish log as JSON
    if check == "embedding_models":
        assert result.failing_rows[0]["expected_dim"] is None  # the model is not configured at all


def test_vector_and_reference_checks_handle_100k_rows(tmp_path: Path) -> None:
    rows = partition_rows("big", 100_000, dim=16)
    vectors = rows["embeddings"].column("vector").to_pylist()
    vectors[70_000] = [float("inf")] + vectors[70_000][1:]
    vectors[90_000] = [0.5 * v for v in vectors[90_000]]
    rows["embeddings"] = rows["embeddings"].set_column(
        rows["embeddings"].schema.get_field_index("vector"), "vector", pa.array(vectors, pa.list_(pa.float32()))
    )
    context = AuditContext("big", rows, open_lake(str(tmp_path / "lake")).snapshot())
    started = time.perf_counter()
    finite, dims, unit = embedding_vectors(context)
    references = embeddings_reference_media(context)
    elapsed = time.perf_counter() - started
    ids = rows["embeddings"].column("subject_id")
    assert not finite.passed and finite.failing_rows[0]["subject_id"] == ids[70_000].as_py()
    assert dims.passed and references.passed
    assert not unit.passed and "1 of 100000 embeddings are not unit norm (max |‖v‖−1| = 0.5)" in unit.detail
    assert unit.failing_rows[0]["subject_id"] == ids[90_000].as_py()
    assert elapsed < 20, f"{elapsed:.1f} s for 100k rows"


# --- end to end through the publish gate --------------------------------------------------------------------


def test_one_nan_vector_blocks_the_publish(processed: Processed, tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake-c"))
    rows = dict(processed.rows)
    _, subject = _nan(rows)
    with pytest.raises(AuditFailedError) as failure:
        lake.publish("quality", {n: TableWrite(t) for n, t in rows.items()}, checks=default_checks(processed.models))
    assert [f["name"] for f in failure.value.failures] == ["embedding_vectors_finite"]
    sample: Any = failure.value.failures[0]["failing_rows"]
    assert sample[0]["subject_id"] == subject
    assert lake.snapshot().seq == 0  # nothing published
    for name in TABLES:
        assert lake.snapshot().table(name).num_rows == 0, name
    rejected = [e for e in lake.state().entries if e.event == "rejected"]
    assert len(rejected) == 1 and "embedding_vectors_finite" in (rejected[0].message or "")
    assert rejected[0].checks is not None
    assert {c["name"] for c in rejected[0].checks if not c["passed"]} == {"embedding_vectors_finite"}

    clean = {n: TableWrite(t) for n, t in processed.rows.items()}
    result = lake.publish("quality", clean, checks=default_checks(processed.models))
    assert result.seq == 1 and lake.snapshot().table("embeddings").num_rows == processed.rows["embeddings"].num_rows
    assert np.isfinite(np.concatenate(lake.snapshot().table("embeddings").column("vector").to_numpy())).all()


def test_the_validation_process_answers_as_this_process_would_and_is_replaced_by_it_when_lost(
    processed: Processed,
) -> None:
    rows = dict(processed.rows)
    _duplicate_derived(rows)  # one suite fails, with failing rows, the others pass
    prepare_in_background()
    process = gx_process._PROCESS
    assert process is not None and process.proc.pid != os.getpid()
    for table in ("media", "derived"):
        there = gx_process.validate(SUITES[table], rows[table])
        assert there == validate_table(SUITES[table], rows[table]), table
    assert not gx_process.validate(SUITES["derived"], rows["derived"]).passed
    process.proc.kill()  # lost mid-session: the next validation runs here, with the same answer
    process.proc.wait()
    assert gx_process.validate(SUITES["derived"], rows["derived"]) == validate_table(SUITES["derived"], rows["derived"])
    assert process.broken


def test_the_validation_process_leaves_scipy_stats_and_altair_unloaded_until_used() -> None:
    """Great Expectations imports both at module level for an expectation our suites never run (~1.3 s of a
    core): the validation process defers them, and they still work when something does use them."""
    script = (
        "import sys\n"
        "from mm_platform.quality import gx_process\n"
        "gx_process._prepare()\n"
        "from mm_platform.quality.expectations import validate_table\n"
        "import great_expectations.expectations as gxe\n"
        "unloaded = [n for n in ('scipy.stats', 'altair') if type(sys.modules.get(n)).__name__ == '_LazyModule']\n"
        "print('unloaded', sorted(unloaded))\n"
        "from scipy import stats\n"
        "print('norm', stats.norm.cdf(0.0))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert "unloaded ['altair', 'scipy.stats']" in out.stdout, out.stdout + out.stderr
    assert "norm 0.5" in out.stdout


def test_the_validation_process_does_not_run_the_main_module_again(tmp_path: Path) -> None:
    """A multiprocessing spawn re-runs the parent's script in the child (a script without a `__main__` guard
    that calls the API would ingest twice); ours must not, and still validates."""
    marks = tmp_path / "marks"
    script = tmp_path / "main_script.py"  # run as a script, as `mmp` is; each run of its body leaves a mark
    script.write_text(
        "import os\n"
        f"with open({str(marks)!r}, 'a') as f:\n"
        "    f.write(f'{os.getpid()}\\n')\n"
        "if __name__ == '__main__':\n"
        "    import pyarrow as pa\n"
        "    from mm_platform.quality import gx_process\n"
        "    from mm_platform.quality.expectations import SUITES\n"
        "    gx_process.prepare_in_background()\n"
        "    assert gx_process._PROCESS is not None\n"
        "    rows = pa.table({'media_id': ['a' * 32], 'modality': ['image'], 'sha256': ['0' * 64]})\n"
        "    print('answered', gx_process._PROCESS.validate(SUITES['media'], rows) is not None)\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True)
    assert "answered True" in out.stdout, out.stdout + out.stderr
    assert len(marks.read_text().split()) == 1  # the script's body ran in the parent only
