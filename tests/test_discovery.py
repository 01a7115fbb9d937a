"""Discovery's decisions without Dagster: S3 event messages parsed (plain, SNS-wrapped, s3:TestEvent,
URL-encoded keys), events coalesced by sequencer into bounded batches (duplicates and late events change
nothing, a key waits for its pending batch), 10,000 upload events over a few ticks → a bounded number of
batches, and reconciliation by pages over a real folder and a real lake: a listing larger than a tick's
budget finishes over several ticks, finds changes no event announced, and the cursor stays a few bytes."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from mm_platform.catalog import open_lake
from mm_platform.ingest.batches import ManifestWriter, listed_batch, load_manifest
from mm_platform.ingest.coalesce import decide_events
from mm_platform.ingest.events import ObjectEvent, UnreadableMessage, parse_message
from mm_platform.ingest.ledger import DiscoveryLedger, finished_batches, load_ledger, published_marker
from mm_platform.ingest.reconcile import ReconcileCursor
from mm_platform.ingest.register import fetch_all, media_row
from mm_platform.ingest.scan import ScanBudget, plan_batches, scan_step
from mm_platform.ingest.ticks import DiscoveryLimits, listing_tick
from mm_platform.lake import Lake, TableWrite
from mm_platform.sources import LocalFolderSource, local_walk
from mm_platform.tables import MEDIA

SOURCE = "s3://media/lib"


def _record(name: str, key: str, sequencer: str, size: int = 1, etag: str = "e") -> dict[str, object]:
    return {
        "eventName": name,
        "eventTime": "2026-12-01T10:00:00.000Z",
        "s3": {"bucket": {"name": "media"}, "object": {"key": key, "size": size, "eTag": etag, "sequencer": sequencer}},
    }


def _event(key: str, sequencer: str, kind: str = "created", etag: str = "e") -> ObjectEvent:
    return ObjectEvent("media", key, kind, sequencer, 1, etag, None, datetime(2026, 12, 1, tzinfo=UTC))  # type: ignore[arg-type]


def test_messages_plain_sns_wrapped_test_event_and_encoded_keys() -> None:
    plain = json.dumps({"Records": [_record("ObjectCreated:Put", "lib/my+photos/a%2Bb%20c.jpg", "0A")]})
    [event] = parse_message(plain)
    assert event.key == "lib/my photos/a+b c.jpg" and event.kind == "created" and event.sequencer == "0A"
    sns = json.dumps(
        {"Type": "Notification", "Message": json.dumps({"Records": [_record("ObjectRemoved:Delete", "lib/x", "0B")]})}
    )
    [removed] = parse_message(sns)
    assert removed.kind == "removed" and removed.key == "lib/x"
    assert parse_message(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "media"})) == []
    assert parse_message(json.dumps({"Records": [_record("ObjectRestore:Completed", "lib/x", "0C")]})) == []
    with pytest.raises(UnreadableMessage):
        parse_message("not json")
    with pytest.raises(UnreadableMessage):
        parse_message(json.dumps({"hello": 1}))


def test_the_sequencer_decides_and_duplicates_or_late_events_change_nothing() -> None:
    # Reordered within a tick: the delete (sequencer 0C) is the latest for a, whatever the arrival order;
    # sequencers of different lengths compare after right-padding ("0B" < "0B01").
    events = [
        _event("lib/a", "0C", "removed"),
        _event("lib/a", "0A"),
        _event("lib/b", "0B01", etag="new"),
        _event("lib/b", "0B", etag="old"),
        _event("lib/b", "0B01", etag="new"),
    ]
    first = decide_events(SOURCE, events, DiscoveryLedger(), now=100.0)
    kinds = {b.kind: b for b in first.batches}
    assert set(kinds) == {"ingest", "erasure"}
    assert [o.etag for o in kinds["ingest"].objects] == ["new"]
    assert [d.uri for d in kinds["erasure"].deleted] == ["s3://media/lib/a"]
    # The same events again (SQS delivers at least once) and an old one arriving late: nothing new.
    done = first.ledger.finish({b.batch_id for b in first.batches})
    again = decide_events(SOURCE, [*events, _event("lib/b", "0A", etag="older")], done, now=110.0)
    assert again.batches == [] and again.stale == 2
    # A later event while its key's batch is still pending waits in the ledger, then goes out alone.
    waiting = decide_events(SOURCE, [_event("lib/b", "0D", etag="newest")], first.ledger, now=120.0)
    assert waiting.batches == [] and set(waiting.ledger.deferred) == {"lib/b"}
    freed = decide_events(SOURCE, [], waiting.ledger.finish({b.batch_id for b in first.batches}), now=130.0)
    assert [o.etag for b in freed.batches for o in b.objects] == ["newest"] and not freed.ledger.deferred
    # Other buckets and prefixes are not this source's.
    foreign = decide_events(
        SOURCE,
        [ObjectEvent("other", "lib/a", "created", "01"), _event("elsewhere/a", "01")],
        DiscoveryLedger(),
        now=140.0,
    )
    assert foreign.batches == [] and foreign.foreign == 2


def test_ten_thousand_upload_events_over_a_few_ticks_become_a_bounded_number_of_batches() -> None:
    ledger, batches, per_tick = DiscoveryLedger(), [], 2_500
    events = [_event(f"lib/up/{i:05d}.jpg", f"{i:08X}") for i in range(10_000)]
    for tick in range(4):
        chunk = events[tick * per_tick : (tick + 1) * per_tick]
        decision = decide_events(SOURCE, [*chunk, *chunk[:100]], ledger, now=float(tick), max_objects=1_000)
        assert len(decision.batches) <= -(-per_tick // 1_000)  # the bound: ceil(events in the tick / batch size)
        batches += decision.batches
        ledger = decision.ledger.finish({b.batch_id for b in decision.batches})
    assert len(batches) == 12  # 4 ticks x ceil(2,500 / 1,000), never one per file
    keys = [o.key for b in batches for o in b.objects]
    assert len(keys) == len(set(keys)) == 10_000  # every upload in exactly one batch
    assert len({b.batch_id for b in batches}) == 12
    replay = decide_events(SOURCE, events, ledger, now=10.0)
    assert replay.batches == [] and replay.stale == 10_000  # re-delivered: each is still published once
    assert len(json.dumps(ledger.to_json())) < 2_000_000  # the ledger lives in the lake, not in the cursor


def _seed(lake: Lake, source: LocalFolderSource) -> None:
    """Publish real registration rows (bytes read and hashed; no models needed) for every listed file."""
    rows = []
    for info, fetched in fetch_all(source, source.list_objects()):
        assert not isinstance(fetched, Exception)
        with fetched:
            rows.append(media_row(info, fetched, "seed", "test"))
    lake.publish("seed", {"media": TableWrite(pa.Table.from_pylist(rows, schema=MEDIA.schema))})


@pytest.mark.parametrize("files", [300, 3_000])
def test_paged_reconciliation_spans_ticks_finds_unannounced_changes_and_keeps_the_cursor_small(
    tmp_path: Path, files: int
) -> None:
    folder = tmp_path / "media"
    for i in range(files):
        path = folder / f"d{i % 7}" / f"f{i:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"object {i}".encode())
    source = LocalFolderSource(folder)
    lake = open_lake(str(tmp_path / "lake"))
    _seed(lake, source)
    # Changes no event announces: an overwrite (new mtime and size), a deletion, a new file.
    changed = folder / "d3" / "f00003.txt"
    changed.write_bytes(b"overwritten, longer")
    os.utime(changed, ns=(1, 1))
    (folder / "d5" / "f00005.txt").unlink()
    (folder / "d6" / "new.txt").write_bytes(b"new")
    budget = ScanBudget(max_keys=files // 5, chunk_keys=files // 20)
    cursor, ticks, found = ReconcileCursor(), 0, []
    limits = DiscoveryLimits(max_objects=1_000)
    while True:
        outcome = listing_tick(lake, source, cursor, limits=limits, budget=budget)
        assert outcome.cursor is not None
        cursor = outcome.cursor
        ticks += 1
        assert len(cursor.to_json()) < 120  # O(1) in objects: the same bound at 300 and 3,000 files
        assert outcome.counts["listed"] <= budget.max_keys + budget.chunk_keys
        found += outcome.new_batches
        if outcome.counts["pass_finished"]:
            break
    assert ticks >= 5  # larger than one tick's budget: the pass took several ticks
    ledger = load_ledger(lake.location, source.uri)
    manifests = {b.batch_id: load_manifest(lake.location, b.batch_id) for b in found}
    ingested = sorted(o.key for m in manifests.values() if m.kind == "ingest" for o in m.objects)
    erased = sorted(
        d.uri.rsplit("/", 2)[-2] + "/" + d.uri.rsplit("/", 1)[-1]
        for m in manifests.values()
        if m.kind == "erasure"
        for d in m.deleted
    )
    assert ingested == ["d3/f00003.txt", "d6/new.txt"] and erased == ["d5/f00005.txt"]
    assert set(ledger.pending) == set(manifests)
    # While they are pending, the next pass requests nothing again; once published, their keys are free.
    again = listing_tick(lake, source, ReconcileCursor(), limits=limits, budget=ScanBudget.unbounded())
    assert again.new_batches == [] and again.counts["busy"] == 3
    for batch_id in manifests:
        lake.location.write_json(published_marker(batch_id), {"seq": 0})
    assert finished_batches(lake.location, ledger, now=0.0, give_up_s=3600) == set(manifests)


def test_a_local_listing_resumes_after_any_key(tmp_path: Path) -> None:
    for name in ["a.txt", "a/b.txt", "a/c/d.txt", "a-b.txt", "b/x.txt", "b/y/z.txt", "c.txt", "é.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    source = LocalFolderSource(tmp_path)
    keys = [o.key for o in source.list_objects()]
    assert keys == sorted(keys)
    for after in [*keys, "", "a/", "a/c", "a/zzz", "b/y/", "bb", "zzz"]:
        assert [o.key for o in source.list_objects(start_after=after)] == [k for k in keys if k > after], after


def test_a_listing_with_non_utf8_names_is_in_key_order_and_resumes(tmp_path: Path) -> None:
    root = os.fsencode(str(tmp_path))
    for name in [b"a.txt", b"caf\xe9.txt", b"caf\xc3\xa9.txt", b"d\xff/x.txt", b"d/y.txt", b"zz.txt"]:
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as out:
            out.write(name)
    source = LocalFolderSource(tmp_path)
    keys = [o.key for o in source.list_objects()]
    assert keys == sorted(keys) and len(keys) == 6
    for after in keys:
        assert [o.key for o in source.list_objects(start_after=after)] == [k for k in keys if k > after], after


def test_a_planned_batch_is_saved_in_columns_and_loads_as_the_listed_objects(tmp_path: Path) -> None:
    folder = tmp_path / "media"
    root = os.fsencode(str(folder))
    for name in [b"a b#.txt", b"caf\xe9.txt", b"d/x.txt", b"d/y%.txt", b"e.txt"]:
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as out:
            out.write(name)
    source = LocalFolderSource(folder)
    listed = list(source.list_objects())
    assert [t.num_rows for t in source.list_tables(chunk_keys=2)] == [2, 2, 1]
    lake = open_lake(str(tmp_path / "lake"))
    outcome = plan_batches(lake, source, max_objects=2)
    assert [b.size for b in outcome.batches] == [2, 2, 1] and outcome.counts["new"] == 5
    files = sorted(p.name for p in (tmp_path / "lake" / "_batches").iterdir())
    assert files == sorted(f"{b.batch_id}.parquet" for b in outcome.batches)
    loaded = [o for b in outcome.batches for o in load_manifest(lake.location, b.batch_id).objects]
    assert loaded == listed  # every field, the exact URI bytes and the percent-encoded key included
    assert loaded[1].key == "caf%E9.txt" and loaded[1].uri.endswith("/media/caf%E9.txt")
    assert loaded[0].uri.endswith("/media/a%20b%23.txt")


def test_a_walk_with_scan_workers_lists_exactly_what_a_serial_walk_lists(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    for folder, count in (("a", 170), ("b/deep", 190), ("c", 3)):  # folders big enough for the workers
        (root / folder).mkdir(parents=True)
        for i in range(count):
            (root / folder / f"f{i:03d}.txt").write_bytes(b"x" * i)
    with open(os.path.join(os.fsencode(str(root / "b")), b"caf\xe9.txt"), "wb") as out:
        out.write(b"latin-1 name")
    (root / "b" / "link.txt").symlink_to(root / "a" / "f001.txt")
    (root / "b" / ".hidden").write_bytes(b"not listed")
    (root / "a" / ".hidden").write_bytes(b"not listed either")  # in a folder of regular files (the fast path)
    with open(os.path.join(os.fsencode(str(root / "c")), b"\xff.txt"), "wb") as out:  # a leaf needing key encoding
        out.write(b"undecodable")
    (root / "c" / "x y%.txt").write_bytes(b"a name to quote")
    serial = LocalFolderSource(root, parallel_after=None)
    parallel = LocalFolderSource(root, parallel_after=0)
    expected = list(serial.list_objects())
    assert len(expected) == 170 + 190 + 3 + 4
    assert {o.key for o in expected} >= {"c/%FF.txt", "c/x y%.txt"} and not any(".hidden" in o.key for o in expected)
    assert [o.key for o in expected] == sorted(o.key for o in expected)
    local_walk._scan_pool(2).result(timeout=60)  # workers up before the walk, so its folders go to them
    assert list(parallel.list_objects()) == expected
    for after in ("a/f069.txt", "a/f169.txt", "b/", "b/deep/f044.txt", "b/link.txt", "zzz"):
        assert list(parallel.list_objects(start_after=after)) == list(serial.list_objects(start_after=after)), after
    assert [t.num_rows for t in parallel.list_tables(chunk_keys=50)] == [50] * 7 + [17]


def test_manifests_become_visible_and_durable_together_and_an_error_leaves_no_temporary_files(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "media"
    folder.mkdir()
    for i in range(6):
        (folder / f"{i}.txt").write_bytes(b"x" * i)
    source = LocalFolderSource(folder)
    table = next(source.list_tables())
    lake = open_lake(str(tmp_path / "lake"))
    batches = [listed_batch(source.uri, table.slice(i, 2)) for i in range(0, 6, 2)]
    manifests = tmp_path / "lake" / "_batches"
    with ManifestWriter(lake.location) as writer:
        for batch in batches:
            writer.save(batch)
        assert not list(manifests.glob("*.parquet"))  # none is visible before all are durable
    assert sorted(p.name for p in manifests.iterdir()) == sorted(f"{b.batch_id}.parquet" for b in batches)
    assert [o.key for b in batches for o in load_manifest(lake.location, b.batch_id).objects] == [
        f"{i}.txt" for i in range(6)
    ]
    failing = listed_batch(source.uri, table.slice(0, 1))
    with pytest.raises(RuntimeError), ManifestWriter(lake.location) as writer:
        writer.save(failing)
        raise RuntimeError("the listing failed after a manifest was written")
    assert not list(manifests.glob("*.tmp")) and not (manifests / f"{failing.batch_id}.parquet").exists()


def test_erased_media_still_at_the_source_are_not_planned_again(tmp_path: Path) -> None:
    folder = tmp_path / "media"
    folder.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (folder / name).write_text(name)
    source = LocalFolderSource(folder)
    victim = next(o for o in source.list_objects() if o.key == "b.txt")
    lake = open_lake(str(tmp_path / "lake"))
    saved: list[str] = []
    outcome = scan_step(
        source,
        lake.snapshot(),
        DiscoveryLedger(),
        ReconcileCursor(),
        lambda batch: saved.extend(batch.object_keys()),
        budget=ScanBudget.unbounded(),
        erased=frozenset({victim.media_id}),
        remember=False,
    )
    assert saved == ["a.txt", "c.txt"] and outcome.counts["new"] == 2
