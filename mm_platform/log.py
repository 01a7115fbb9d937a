"""Standard-library logging under ``mm_platform.*`` with key=value context.

Dagster captures these loggers through ``python_logs.managed_python_loggers`` in dagster.yaml.
"""

from __future__ import annotations

import logging


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name if name.startswith("mm_platform") else f"mm_platform.{name}")


def kv(**context: object) -> str:
    """Render context as ``key=value`` pairs, the format every mm_platform log line uses."""
    return " ".join(f"{key}={value}" for key, value in context.items() if value is not None)
