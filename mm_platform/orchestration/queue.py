"""The SQS queue that carries a bucket's S3 event notifications, as a Dagster resource (dagster-aws's boto3
settings: region, endpoint, keys), handing the sensor a plain :class:`~mm_platform.sources.queue.S3EventQueue`."""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg
from dagster_aws.utils import ResourceWithBoto3Configuration
from pydantic import PrivateAttr

from mm_platform.orchestration.env import AWS_VARIABLES, environment
from mm_platform.sources import S3Settings
from mm_platform.sources.queue import S3EventQueue

__all__ = ["S3EventQueueResource"]


class S3EventQueueResource(ResourceWithBoto3Configuration):
    """Unset fields fall back to ``MM_SQS_QUEUE_URL`` and the ``AWS_*`` variables when the sensor runs."""

    queue_url: str | None = None
    """Default: ``$MM_SQS_QUEUE_URL``; unset: the event sensor skips."""
    visibility_timeout_s: int = 120
    """How long a received message stays hidden; longer than a tick, so it is deleted before it returns."""
    _env: Mapping[str, str] = PrivateAttr(default_factory=dict)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._env = environment("MM_SQS_QUEUE_URL", *AWS_VARIABLES)

    def resolved_url(self) -> str | None:
        return self.queue_url or self._env.get("MM_SQS_QUEUE_URL") or None

    def get_queue(self) -> S3EventQueue:
        url = self.resolved_url()
        if not url:
            raise ValueError("no queue configured: set MM_SQS_QUEUE_URL")
        env = S3Settings.from_env(self._env)
        settings = S3Settings(
            endpoint_url=self.endpoint_url or env.endpoint_url,
            access_key_id=self.aws_access_key_id or env.access_key_id,
            secret_access_key=self.aws_secret_access_key or env.secret_access_key,
            region=self.region_name or env.region,
        )
        return S3EventQueue(url, settings, visibility_s=self.visibility_timeout_s)
