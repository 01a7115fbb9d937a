"""Addresses of the lake browser's pages, for whoever links to them (Dagster metadata, the CLI).

Plain string building, no web framework: ``mm_platform.orchestration.results`` imports this without
importing FastAPI.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

__all__ = ["diff_url", "item_url", "snapshot_url"]


def _base(browser_url: str) -> str:
    return browser_url.rstrip("/")


def item_url(browser_url: str, media_id: str, seq: int | None = None) -> str:
    """The item page of ``media_id`` (in snapshot ``seq``, default the latest)."""
    query = f"?{urlencode({'snapshot': seq})}" if seq is not None else ""
    return f"{_base(browser_url)}/items/{quote(media_id, safe='')}{query}"


def snapshot_url(browser_url: str, seq: int) -> str:
    """The snapshot's page: what it changed against the one before it, by object key."""
    return diff_url(browser_url, max(seq - 1, 0), seq)


def diff_url(browser_url: str, a: int, b: int) -> str:
    return f"{_base(browser_url)}/diff?{urlencode({'a': a, 'b': b})}"
