"""The lake browser behind ``mmp serve``: read-only pages and a JSON API over one lake.

``LakeBrowser`` (``service``) is the thin layer over the functions the CLI uses; ``create_app`` (``app``)
puts FastAPI pages and API in front of it; ``links`` builds page addresses without importing a web framework
(Dagster metadata links to items and snapshots with it). The app is imported on first use, so importing
``mm_platform.serve.links`` costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mm_platform.serve.links import diff_url, item_url, snapshot_url

if TYPE_CHECKING:
    from mm_platform.serve.app import create_app
    from mm_platform.serve.service import LakeBrowser

__all__ = ["LakeBrowser", "create_app", "diff_url", "item_url", "snapshot_url"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from mm_platform.serve.app import create_app

        return create_app
    if name == "LakeBrowser":
        from mm_platform.serve.service import LakeBrowser

        return LakeBrowser
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
