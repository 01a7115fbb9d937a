"""Upload → published and delete → published latency through the SQS path (issue 14), on moto's server
(S3 + SQS on 127.0.0.1). The sensor ticks every ``INTERVAL_S`` as the Dagster daemon would; each run it
requests is executed in this process right away (the run queue's one ingest run at a time, models warm, as a
long-lived worker has them), and an object counts as published when the lake's latest snapshot shows it.
Uploads and deletions land at random moments of the interval. ``python -m benchmarks.discovery_latency``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="two objects (a smoke run)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results_discovery_latency.json"))
    args = parser.parse_args()
    if args.quick:
        args.objects = 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import boto3
    import dagster as dg

    from definitions import defs
    from mm_platform.catalog import open_lake
    from mm_platform.orchestration import LakeResource, MediaSourceResource
    from mm_platform.orchestration.queue import S3EventQueueResource
    from mm_platform.orchestration.sensors.events import INTERVAL_S, sqs_media_sensor
    from tests.conftest import SHARED_MEDIA
    from tests.services import moto_s3_server

    image = (SHARED_MEDIA / "images" / "apple.jpg").read_bytes()
    with tempfile.TemporaryDirectory() as tmp, moto_s3_server(Path(tmp)) as ep, dg.instance_for_test() as instance:
        os.environ.update(ep.env())
        os.environ["MM_LAKE"] = f"{tmp}/lake"
        s3 = ep.client()
        sqs = boto3.client(
            "sqs",
            endpoint_url=ep.url,
            aws_access_key_id=ep.access_key,
            aws_secret_access_key=ep.secret_key,
            region_name=ep.region,
        )
        ep.create_bucket("latency")
        queue = sqs.create_queue(QueueName="latency")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        s3.put_bucket_notification_configuration(
            Bucket="latency",
            NotificationConfiguration={
                "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}]
            },
        )
        resources = {
            "lake": LakeResource(uri=f"{tmp}/lake"),
            "s3_source": MediaSourceResource(uri="s3://latency/lib"),
            "s3_events": S3EventQueueResource(queue_url=queue),
        }
        job = defs.resolve_job_def("ingest_job")
        lake = open_lake(f"{tmp}/lake")
        stop = threading.Event()
        run_seconds: list[float] = []

        def daemon() -> None:
            cursor: str | None = None
            done: set[str] = set()
            while not stop.is_set():
                started = time.monotonic()
                result = sqs_media_sensor(
                    dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
                )
                assert isinstance(result, dg.SensorResult)
                cursor = result.cursor
                for add in result.dynamic_partitions_requests or []:
                    instance.add_dynamic_partitions(add.partitions_def_name, list(add.partition_keys or []))
                for request in result.run_requests or []:
                    if request.run_key in done:
                        continue  # what Dagster's run key does
                    done.add(str(request.run_key))
                    t = time.monotonic()
                    assert job.execute_in_process(instance=instance, partition_key=request.partition_key).success
                    run_seconds.append(time.monotonic() - t)
                stop.wait(max(0.0, INTERVAL_S - (time.monotonic() - started)))

        def wait_for(key: str, status: str) -> float:
            t0 = time.monotonic()
            while True:
                rows = lake.snapshot().table("media", columns=["key", "status"]).to_pylist()
                if any(r["key"] == key and r["status"] == status for r in rows):
                    return time.monotonic() - t0
                time.sleep(0.2)

        thread = threading.Thread(target=daemon, daemon=True)
        thread.start()
        s3.put_object(Bucket="latency", Key="lib/warmup.jpg", Body=image)
        wait_for("lib/warmup.jpg", "active")  # models loaded once, as in a long-lived worker
        uploads: list[float] = []
        deletions: list[float] = []
        for i in range(args.objects):
            time.sleep(random.uniform(0, INTERVAL_S))
            key = f"lib/upload-{i}.jpg"
            s3.put_object(Bucket="latency", Key=key, Body=image + i.to_bytes(4, "big"))
            uploads.append(wait_for(key, "active"))
            print(f"upload {i}: {uploads[-1]:.1f}s", flush=True)
        for i in range(args.objects):
            time.sleep(random.uniform(0, INTERVAL_S))
            key = f"lib/upload-{i}.jpg"
            s3.delete_object(Bucket="latency", Key=key)
            deletions.append(wait_for(key, "deleted"))
            print(f"delete {i}: {deletions[-1]:.1f}s", flush=True)
        stop.set()
        thread.join(timeout=120)

    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 2)

    result: dict[str, Any] = {
        "interval_s": INTERVAL_S,
        "objects": args.objects,
        "upload_p50_s": round(statistics.median(uploads), 2),
        "upload_p95_s": pct(uploads, 0.95),
        "delete_p50_s": round(statistics.median(deletions), 2),
        "delete_p95_s": pct(deletions, 0.95),
        "run_p50_s": round(statistics.median(run_seconds), 2),
        "uploads_s": [round(v, 2) for v in uploads],
        "deletions_s": [round(v, 2) for v in deletions],
    }
    print(json.dumps(result, indent=2))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
