"""Event-driven discovery end to end on moto's server (S3 and SQS in one process, on 127.0.0.1): the bucket's
notifications reach the queue (an s3:TestEvent first, URL-encoded keys); sensor ticks turn them into batches;
a message is deleted only after its batch manifest is in the lake (a tick that cannot save keeps them);
every upload, overwrite and deletion is published (the deletion in one publish); duplicate, reordered and
SNS-wrapped re-deliveries change nothing; the cursor stays a few bytes."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import pyarrow.compute as pc
import pytest

from mm_platform.catalog import open_lake
from mm_platform.orchestration import LakeResource, MediaSourceResource
from mm_platform.orchestration.queue import S3EventQueueResource
from sensors import sqs_media_sensor
from tests.sensor_ticks import SensorTicks, run_ingest_job, use_s3_lake
from tests.services import S3Endpoint

BUCKET = "events-media"
PHOTO = "lib/my photos/chel sea+1.png"  # arrives as lib/my+photos/chel+sea%2B1.png


def _sqs(endpoint: S3Endpoint) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=endpoint.url,
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key,
        region_name=endpoint.region,
    )


def _in_queue(sqs: Any, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attrs[n]) for n in names)


def _peek(sqs: Any, url: str, count: int) -> list[str]:
    """The bodies of ``count`` messages, left in the queue (visibility 0)."""
    bodies: list[str] = []
    while len(bodies) < count:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        bodies += [m["Body"] for m in answer.get("Messages", []) if m["Body"] not in bodies]
    return bodies


def test_s3_events_through_sqs_become_published_batches(
    s3_endpoint: S3Endpoint,
    shared_media: Path,
    instance: dg.DagsterInstance,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lake_dir = tmp_path / "lake"
    use_s3_lake(monkeypatch, s3_endpoint, lake_dir)
    s3, sqs = s3_endpoint.client(), _sqs(s3_endpoint)
    s3_endpoint.create_bucket(BUCKET)
    queue = sqs.create_queue(QueueName="events-media")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}]
        },
    )
    s3.upload_file(str(shared_media / "images/orange.jpg"), BUCKET, "lib/orange.jpg")
    s3.upload_file(str(shared_media / "images/chelsea.png"), BUCKET, PHOTO)
    resources = {
        "lake": LakeResource(uri=str(lake_dir)),
        "s3_source": MediaSourceResource(uri=f"s3://{BUCKET}/lib"),
        "s3_events": S3EventQueueResource(queue_url=queue, visibility_timeout_s=1),
    }
    lake = open_lake(str(lake_dir))
    cursors: list[str | None] = [None]
    ticks = SensorTicks(sqs_media_sensor, instance, resources)

    def tick() -> dg.SensorResult:
        result = ticks.tick(cursors[-1])
        assert result.cursor is not None and len(result.cursor) < 200  # O(1): no object in the cursor
        cursors.append(result.cursor)
        return result

    # A tick that cannot save its manifest deletes nothing: the messages come back (at-least-once).
    (lake_dir / "_batches").write_text("in the way")
    with pytest.raises(Exception, match="_batches"):
        tick()
    assert _in_queue(sqs, queue) == 3  # s3:TestEvent + two uploads, none deleted
    (lake_dir / "_batches").unlink()
    time.sleep(1.5)  # past the visibility timeout
    first = tick()
    [request] = first.run_requests or []
    batch = str(request.partition_key)
    manifest = lake.location.read_json(f"_batches/{batch}.json")
    assert manifest is not None and sorted(o["key"] for o in manifest["objects"]) == [
        "lib/my photos/chel sea+1.png",
        "lib/orange.jpg",
    ]
    assert _in_queue(sqs, queue) == 0  # deleted once the manifest and the ledger were saved
    assert run_ingest_job(instance, batch).success
    media = {r["key"]: r for r in lake.snapshot().table("media").to_pylist()}
    assert set(media) == {"lib/orange.jpg", PHOTO} and all(r["status"] == "active" for r in media.values())

    # Overwrite one object, delete the other: one ingest batch and one erasure batch.
    s3.upload_file(str(shared_media / "images/apple.jpg"), BUCKET, "lib/orange.jpg")
    s3.delete_object(Bucket=BUCKET, Key=PHOTO)
    bodies = _peek(sqs, queue, 2)
    second = tick()
    kinds = sorted(str(r.tags["mm/kind"]) for r in second.run_requests or [])
    assert kinds == ["erasure", "ingest"]
    seq_before = lake.snapshot().seq
    for r in sorted(second.run_requests or [], key=lambda r: str(r.tags["mm/kind"])):
        assert run_ingest_job(instance, str(r.partition_key)).success
    snapshot = lake.snapshot()
    assert snapshot.seq == seq_before + 2  # the deletion is one publish, the overwrite another
    media = {r["key"]: r for r in snapshot.table("media").to_pylist()}
    apple = hashlib.sha256((shared_media / "images/apple.jpg").read_bytes()).hexdigest()
    assert media["lib/orange.jpg"]["content_sha256"] == apple and media["lib/orange.jpg"]["status"] == "active"
    assert media[PHOTO]["status"] == "deleted"
    for table in ("metadata", "derived", "embeddings"):
        gone = pc.field("media_id") == media[PHOTO]["media_id"]
        assert snapshot.table(table, filter=gone).num_rows == 0, table

    # Nothing new: nothing requested. Then the same events again, reordered and SNS-wrapped: nothing changes.
    assert not tick().run_requests
    for body in [*reversed(bodies), json.dumps({"Type": "Notification", "Message": bodies[0]})]:
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    replay = tick()
    assert not replay.run_requests and _in_queue(sqs, queue) == 0
    assert lake.snapshot().seq == snapshot.seq
