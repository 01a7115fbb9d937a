"""An instrumented image opener for tests: counts real decodes (a ``load`` that still has tiles to read).

``install()`` wraps ``PIL.ImageFile.ImageFile.load`` in the current process; ``counting_analyze`` is a
picklable probe function that does the same inside a probe worker and reports the count of each call
on the returned ``Analysis`` (attribute ``decodes``), so a whole batch can be counted through the workers.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from PIL import ImageFile, TiffImagePlugin

DECODES: Counter[str] = Counter()
"""Decodes counted in this process, by image format."""
# Plugins whose load() decodes without ImageFile.load (libtiff): wrapped too; nested calls count once.
_CLASSES: tuple[type[ImageFile.ImageFile], ...] = (ImageFile.ImageFile, TiffImagePlugin.TiffImageFile)
_REAL = {cls: cls.__dict__["load"] for cls in _CLASSES}


def _counting(real: Any) -> Any:
    def load(self: ImageFile.ImageFile) -> Any:
        if getattr(self, "_mmp_loading", False):
            return real(self)
        if self.tile:  # tiles left to decode: this call decodes pixels (later calls return the cached image)
            DECODES[str(self.format)] += 1
        self._mmp_loading = True  # type: ignore[attr-defined]
        try:
            return real(self)
        finally:
            self._mmp_loading = False  # type: ignore[attr-defined]

    return load


def install() -> None:
    for cls, real in _REAL.items():
        cls.load = _counting(real)  # type: ignore[method-assign]


def uninstall() -> None:
    for cls, real in _REAL.items():
        cls.load = real  # type: ignore[method-assign]


def counting_analyze(data: bytes, name: str) -> Any:
    """``analyze`` in a worker, with the number of decodes it made attached to its result."""
    from mm_platform.ingest.analyze import analyze

    install()
    before = sum(DECODES.values())
    analysis = analyze(data, name)
    analysis.decodes = sum(DECODES.values()) - before  # type: ignore[attr-defined]
    return analysis
