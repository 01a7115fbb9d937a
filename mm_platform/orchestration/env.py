"""The environment a resource falls back to, read through ``dg.EnvVar`` once, when Dagster sets the resource up
for a run or a sensor tick: never at import time (a code location loads before its runs' environment is
known), never again in a resource's methods."""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

__all__ = ["AWS_VARIABLES", "environment"]

AWS_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ALLOW_HTTP",
)
"""What S3 sources and an S3 lake read (endpoint, keys, region)."""


def environment(*names: str) -> Mapping[str, str]:
    """The variables among ``names`` that are set and not empty."""
    values = {name: dg.EnvVar(name).get_value() for name in names}
    return {name: value for name, value in values.items() if value}
