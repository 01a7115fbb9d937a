"""An SQS queue of S3 event notifications: receive a tick's worth of messages, delete them once handled.

Receiving hides a message for ``visibility_s``; one that is not deleted in time comes back (at-least-once),
which is what makes "delete only after the batch manifest is saved" safe: a crash in between re-delivers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from mm_platform.sources.s3 import S3Settings

__all__ = ["QueueMessage", "S3EventQueue"]

log = logging.getLogger("mm_platform.sources")


@dataclass(frozen=True)
class QueueMessage:
    """One received message."""

    message_id: str
    receipt: str
    """The receipt handle that deletes it."""
    body: str
    sent_at: float | None
    """Unix time SQS accepted it (``SentTimestamp``)."""


class S3EventQueue:
    """The queue at ``queue_url`` (settings: the same endpoint and credentials as the S3 source)."""

    def __init__(self, queue_url: str, settings: S3Settings | None = None, *, visibility_s: int = 120) -> None:
        self.queue_url = queue_url
        self.visibility_s = visibility_s
        settings = settings or S3Settings()
        self._client: Any = boto3.session.Session().client(
            "sqs",
            endpoint_url=settings.endpoint_url,
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=settings.secret_access_key,
            region_name=settings.region,
            config=Config(
                retries={"max_attempts": 4, "mode": "standard"},
                connect_timeout=settings.connect_timeout_s,
                read_timeout=max(settings.read_timeout_s, 30.0),
            ),
        )

    def receive(self, *, max_messages: int, wait_s: float = 1.0, budget_s: float = 5.0) -> list[QueueMessage]:
        """Up to ``max_messages``: the first call long-polls ``wait_s`` (so an event a second away is caught
        in this tick), later calls take what is there until the queue is empty or ``budget_s`` is spent."""
        started = time.monotonic()
        out: list[QueueMessage] = []
        wait = int(max(0, min(20, round(wait_s))))
        while len(out) < max_messages and time.monotonic() - started < budget_s:
            answer = self._client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, max_messages - len(out)),
                WaitTimeSeconds=wait,
                VisibilityTimeout=self.visibility_s,
                MessageSystemAttributeNames=["SentTimestamp"],
            )
            messages = answer.get("Messages", [])
            if not messages:
                break
            wait = 0
            for m in messages:
                sent = m.get("Attributes", {}).get("SentTimestamp")
                out.append(
                    QueueMessage(m["MessageId"], m["ReceiptHandle"], m["Body"], int(sent) / 1000 if sent else None)
                )
        return out

    def delete(self, messages: Sequence[QueueMessage]) -> int:
        """Delete messages (10 per call); returns how many failed (they come back and are dropped as stale)."""
        failed = 0
        for start in range(0, len(messages), 10):
            group = messages[start : start + 10]
            answer = self._client.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m.receipt} for i, m in enumerate(group)],
            )
            for failure in answer.get("Failed", []):
                failed += 1
                log.warning("could not delete message queue=%s error=%s", self.queue_url, failure.get("Message"))
        return failed

    def close(self) -> None:
        self._client.close()
