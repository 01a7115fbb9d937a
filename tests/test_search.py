"""Search over a real lake built from a subset of ../shared/media in two publishes: text → images through the
label bridge, text → documents through MiniLM, image → image; ``--where`` filters; snapshot pinning; the HNSW
index's recall on clustered synthetic vectors, its on-disk cache and incremental reuse across snapshots; and
``mmp search`` through click's CliRunner. Queries and expected answers were written before running them."""

from __future__ import annotations

import io
import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner
from PIL import Image

from mm_platform.catalog import open_lake
from mm_platform.cli import main
from mm_platform.config import PipelineConfig
from mm_platform.ingest.process import BatchProcessor
from mm_platform.lake import Lake, LakeLocation
from mm_platform.search import (
    Allowed,
    HnswIndex,
    HnswParams,
    IndexConfig,
    SearchError,
    active_models,
    clear_index_memo,
    exact_topk,
    filter_schema,
    open_index,
    search,
)
from mm_platform.search.filter_frame import matched_media
from mm_platform.search.filters import compile_filter
from mm_platform.search.hits import matching_media
from mm_platform.search.index_store import IndexStore, ModelIndex
from mm_platform.sources import LocalFolderSource
from tests.services import S3Endpoint
from tests.synthetic import clustered_unit_vectors

FRUIT = {"images/orange.jpg", "images/apple.jpg", "images/fruits.jpg", "images/fruits_really_a_jpeg.png"}
FIRST = [
    *sorted(FRUIT),
    "images/chelsea.png",
    "images/motorcycle_left.png",
    "images/baboon.jpg",
    "images/coffee.png",
    "images/rocket.jpg",
    "images/sudoku.png",
    "documents/crazyones.pdf",
    "documents/hello-world.pdf",
]
LATER = ["images/kivy_kiwi.jpg", "images/astronaut.png"]


@dataclass(frozen=True)
class Searchable:
    lake: Lake
    root: Path
    media: Path
    first_seq: int
    later_seq: int


@pytest.fixture(scope="module")
def searchable(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Searchable]:
    """FIRST published as snapshot 1, LATER as snapshot 2."""
    root = tmp_path_factory.mktemp("search") / "lake"
    lake = open_lake(str(root))
    processor = BatchProcessor(lake, PipelineConfig(timeout_s=120))
    source = LocalFolderSource(shared_media)
    by_key = {o.key: o for o in source.list_objects()}
    first = processor.run(source, [by_key[k] for k in FIRST], "batch-1", "run-1")
    later = processor.run(source, [by_key[k] for k in LATER], "batch-2", "run-2")
    assert first.publish is not None and later.publish is not None
    clear_index_memo()
    yield Searchable(lake, root, shared_media, first.publish.seq, later.publish.seq)


def test_a_text_query_finds_fruit_images_first(searchable: Searchable) -> None:
    hits = search(searchable.lake, "a fruit", k=5)
    top = [h.key for h in hits[:3]]
    assert set(top) <= FRUIT | {"images/kivy_kiwi.jpg"}, top
    assert "images/orange.jpg" in top
    assert all(h.route == "label-bridge" for h in hits[:3])
    thumb = Image.open(io.BytesIO(hits[0].thumbnail or b""))
    assert thumb.format == "JPEG" and max(thumb.size) <= 256
    assert hits[0].uri.endswith("images/orange.jpg") and hits[0].metadata["width"] == 512


def test_a_text_query_reaches_documents_through_their_text(searchable: Searchable) -> None:
    hits = search(searchable.lake, "here's to the crazy ones, the misfits, the rebels", k=3)
    assert hits[0].key == "documents/crazyones.pdf"
    assert hits[0].route == "text" and hits[0].modality == "document"
    assert hits[0].thumbnail is None


def test_an_image_query_finds_itself_then_other_fruit(searchable: Searchable) -> None:
    hits = search(searchable.lake, searchable.media / "images/orange.jpg", k=4)
    assert hits[0].key == "images/orange.jpg" and hits[0].score > 0.99
    assert hits[1].key in FRUIT | {"images/kivy_kiwi.jpg"}
    assert {h.route for h in hits} == {"image"}
    with Image.open(searchable.media / "images/orange.jpg") as picture:
        assert search(searchable.lake, picture, k=1)[0].key == "images/orange.jpg"


def test_where_keeps_exactly_the_matching_media(searchable: Searchable) -> None:
    snap = searchable.lake.snapshot()
    media = {r["media_id"]: r for r in snap.table("media").to_pylist()}
    expected = {
        media[r["media_id"]]["key"]
        for r in snap.table("metadata", columns=["media_id", "modality", "width"]).to_pylist()
        if r["modality"] == "image" and (r["width"] or 0) > 400
    }
    assert 0 < len(expected) < len(media)
    hits = search(searchable.lake, "a fruit", k=100, where="modality = 'image' and width > 400")
    assert {h.key for h in hits} == expected
    assert all(h.modality == "image" and h.metadata["width"] > 400 for h in hits)
    image_hits = search(searchable.lake, searchable.media / "images/orange.jpg", k=100, where="width <= 400")
    assert image_hits and all(h.metadata["width"] <= 400 for h in image_hits)
    assert search(searchable.lake, "a fruit", where="modality = 'audio'") == []


@pytest.mark.parametrize(
    "where",
    [
        "modality = 'image' and width > 400",
        "width is null",
        "size_bytes > 100000 or mime_type = 'application/pdf'",
        "not (modality in ('image', 'video')) and size_bytes >= 0",
        "captured_at > '2000-01-01'",
        "width between 100 and 800 and height is not null",
    ],
)
def test_a_new_filter_from_the_frame_keeps_what_the_join_keeps(searchable: Searchable, where: str) -> None:
    """The in-memory frame (a new filter without reading or joining tables) answers exactly as the join of
    media and metadata does, and an index maps its mask to the same positions as a probe by id."""
    snap = searchable.lake.snapshot()
    parsed = compile_filter(where, filter_schema(snap))
    matched = matched_media(snap, parsed)
    assert matched.frame is not None and matched.mask is not None
    assert set(matched.ids.to_pylist()) == set(matching_media(snap, parsed).to_pylist())
    index = open_index(snap, active_models(snap).image.model_id)  # type: ignore[union-attr]
    by_frame, by_ids = index.allowed(matched), index.allowed(matched.ids)
    assert by_frame is not None and by_ids is not None
    assert np.array_equal(by_frame.mask, by_ids.mask)


def test_a_pinned_snapshot_does_not_see_later_media(searchable: Searchable) -> None:
    query = searchable.media / "images/orange.jpg"
    old = {h.key for h in search(searchable.lake, query, k=100, seq=searchable.first_seq)}
    new = {h.key for h in search(searchable.lake, query, k=100)}
    assert not old & set(LATER)
    assert set(LATER) <= new
    by_snapshot = search(searchable.lake.snapshot(seq=searchable.first_seq), "a fruit", k=100)
    assert not {h.key for h in by_snapshot} & set(LATER)
    with pytest.raises(SearchError, match="no media vectors"):
        search(searchable.lake, "a fruit", seq=0)


def test_the_active_models_are_the_ones_the_pipeline_wrote(searchable: Searchable) -> None:
    models = active_models(searchable.lake.snapshot())
    assert models.image is not None and models.image.model_id == "efficientnet-lite0"
    assert models.image.last_seq == searchable.later_seq
    assert models.text is not None and models.text.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert models.text.last_seq == searchable.first_seq


def test_hnsw_recall_on_clustered_vectors() -> None:
    """recall@10 against exact search on 20k x 64 clustered unit vectors, unfiltered and filtered."""
    mixture = clustered_unit_vectors(64, 100, seed=0, intrinsic=8)
    data, queries = mixture.sample(20_000, seed=1), mixture.sample(100, seed=2)
    index = HnswIndex.build(data, HnswParams(m=16, ef_construction=64, ef_search=64, exact_below=0))

    def recall(allowed: Allowed | None) -> float:
        truth = exact_topk(data, queries, 10, rows=None if allowed is None else allowed.rows)[1]
        found = index.search(queries, 10, allowed)[1]
        return float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))

    rng = np.random.default_rng(3)
    assert recall(None) >= 0.95
    broad = Allowed(rng.random(len(data)) < 0.1)  # a graph walk with the bitmap (exact_below=0)
    assert recall(broad) >= 0.95
    assert set(index.search(queries, 10, broad)[1].ravel()) <= set(broad.rows)
    index.params = HnswParams(exact_below=1_000)
    assert recall(Allowed(rng.random(len(data)) < 0.01)) == 1.0  # selective: exact over the allowed rows


def test_the_ann_index_is_cached_and_reused_incrementally(searchable: Searchable, tmp_path: Path) -> None:
    root = tmp_path / "lake"
    shutil.copytree(searchable.root, root)
    lake = open_lake(str(root))
    config = IndexConfig(ann_min_rows=1)  # force the HNSW path on a small table
    model = "efficientnet-lite0"
    clear_index_memo()
    first = open_index(lake.snapshot(seq=searchable.first_seq), model, config)
    assert (first.kind, first.origin) == ("hnsw", "built")
    assert list((root / "_indexes").glob(f"*/v{first.version}/manifest.json"))
    clear_index_memo()
    assert open_index(lake.snapshot(seq=searchable.first_seq), model, config).origin == "cached"
    later = open_index(lake.snapshot(), model, config)
    assert later.origin == "incremental" and later.size == first.size + len(LATER)
    orange = searchable.media / "images/orange.jpg"
    exact = search(lake, orange, k=5)
    approx = search(lake, orange, k=5, config=config)  # equal: 14 vectors, the graph finds them all
    assert {h.key for h in approx} == {h.key for h in exact}  # (fruits.jpg has a twin: ties may swap)
    assert [round(h.score, 5) for h in approx] == [round(h.score, 5) for h in exact]
    rolled = lake.rollback(searchable.first_seq).seq  # the later media leave: their rows go dead
    after = open_index(lake.snapshot(seq=rolled), model, config)
    assert after.origin == "incremental" and after.size == first.size and not after.live.all()
    keys = {h.key for h in search(lake, orange, k=100, config=config)}
    assert keys and not keys & set(LATER)


def test_the_index_cache_round_trips_through_s3(s3_endpoint: S3Endpoint) -> None:
    """An index cached under an s3:// lake is uploaded and read back whole (bytes, keys, live rows)."""
    bucket = s3_endpoint.create_bucket(f"index-{uuid.uuid4().hex[:12]}")
    location = LakeLocation.from_uri(f"s3://{bucket}/lake", s3_endpoint.env())
    data = clustered_unit_vectors(16, 5, seed=0, intrinsic=4).sample(300, seed=1)
    keys = pa.table({"media_id": [f"m{i}" for i in range(300)], "fingerprint": [f"f{i}" for i in range(300)]})
    live = np.arange(300) % 7 != 0
    built = ModelIndex("some/model", 4, keys, live, HnswIndex.build(data), "built")
    store = IndexStore(location, "some/model")
    store.save(built)
    loaded = store.load(4, HnswParams())
    assert loaded is not None and loaded.origin == "cached" and store.versions() == [4]
    assert loaded.keys.equals(keys) and (loaded.live == live).all()
    assert loaded.search(data[1], 1, loaded.allowed()) == built.search(data[1], 1, built.allowed())
    assert loaded.search(data[7], 1, loaded.allowed())[0][0] != "m7"  # a dead row is never returned


def test_mmp_search_prints_hits_and_refuses_bad_filters(searchable: Searchable) -> None:
    runner = CliRunner()
    lake = ["--lake", str(searchable.root)]
    result = runner.invoke(main, [*lake, "search", "a fruit", "--k", "3", "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert len(hits) == 3 and hits[0]["key"] in FRUIT and hits[0]["thumbnail_bytes"] > 0
    image = str(searchable.media / "images/orange.jpg")
    args = ["search", "--image", image, "--snapshot", str(searchable.first_seq), "--where", "modality = 'image'"]
    result = runner.invoke(main, [*lake, *args])
    assert result.exit_code == 0, result.output
    header, first = result.stdout.splitlines()[:2]
    assert header == f"snapshot {searchable.first_seq}, one model: image (efficientnet-lite0)"
    assert first.split()[-3] == "images/orange.jpg"
    bad = runner.invoke(main, [*lake, "search", "a fruit", "--where", "width > 400; DROP TABLE media"])
    assert bad.exit_code == 2 and "unexpected ';' at column 12" in bad.output
    assert runner.invoke(main, [*lake, "search"]).exit_code == 2  # neither text nor --image
    snap = searchable.lake.snapshot()
    assert snap.table("media", filter=pc.field("status") == "active").num_rows == len(FIRST) + len(LATER)
