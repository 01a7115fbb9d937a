"""The numbers that bound what one untrusted file may cost: pixels, extracted text, probing time.

A leaf (no imports from the package), so that quarantine classification and the limits that raise
quarantine verdicts can both name the same budget.
"""

from __future__ import annotations

__all__ = ["DEFAULT_TIMEOUT_S", "MAX_IMAGE_PIXELS", "MAX_TEXT_CHARS"]

MAX_IMAGE_PIXELS = 89_478_485
"""Largest image we decode (Pillow's own default, ~ a 9459x9459 RGB image = 256 MiB of pixels). Enforced
as an error on every open — not by changing Pillow's global, which other code in the process owns."""
MAX_TEXT_CHARS = 5_000_000
"""Extracted text is cut here so one huge document cannot blow up a metadata row."""
DEFAULT_TIMEOUT_S = 60.0
"""Per-file wall-clock budget for probing (sniff, metadata, decode check); a worker merely waiting for a CPU on a
busy host gets more (``pool_worker.STARVED_LIMIT``)."""
