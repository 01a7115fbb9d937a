"""The decoders' one-time set-up, done in the probe workers' fork server so that no worker pays it.

Imported for its effect, by the fork server only (``PROBE_PRELOAD``): every worker forks from the server
with this done. Pillow loads its format plugins on first use (``Image.init``, ~45 ms of a core), which
each fresh worker otherwise paid before its first decode: a batch's first results came ~45 ms late, and
so did every worker replaced after a timeout.
"""

from __future__ import annotations

from PIL import Image

Image.init()
