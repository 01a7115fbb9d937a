"""Ingest: turn a source listing into rows for the lake (registration now; probing and derivation build on it)."""

from mm_platform.ingest.register import RegisteredBatch, register_objects

__all__ = ["RegisteredBatch", "register_objects"]
