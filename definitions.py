"""The project's code location for ``dagster dev -f definitions.py`` and the images that serve this file: the
``Definitions`` built once in the installed package (``mm_platform.orchestration.definitions``)."""

from mm_platform.orchestration.definitions import defs

__all__ = ["defs"]
