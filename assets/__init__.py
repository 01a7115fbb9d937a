"""Dagster assets: thin adapters over the mm_platform core, one module per layer."""

from assets.media import raw_media

all_assets = [raw_media]

__all__ = ["all_assets"]
