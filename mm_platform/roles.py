"""Which model role embeds which kind of media, and the ``settings`` key naming a role's active model.

One image model embeds images and video keyframes; one text model embeds documents and plain text. Ingest
(what to embed), the invariants (what must be covered), re-embedding and search (which vectors to rank)
all read it from here.
"""

from __future__ import annotations

__all__ = [
    "IMAGE_MODALITIES",
    "ROLES",
    "ROLE_MODALITIES",
    "ROLE_OF_MODALITY",
    "TEXT_MODALITIES",
    "active_model_key",
]

IMAGE_MODALITIES = ("image", "video")
"""Media the image model embeds (a video through its keyframes)."""
TEXT_MODALITIES = ("document", "text")
"""Media the text model embeds (through their text chunks)."""
ROLE_MODALITIES: dict[str, tuple[str, ...]] = {"image": IMAGE_MODALITIES, "text": TEXT_MODALITIES}
"""role → the modalities its model embeds."""
ROLES = tuple(ROLE_MODALITIES)
ROLE_OF_MODALITY: dict[str, str] = {m: role for role, members in ROLE_MODALITIES.items() for m in members}
"""modality → the role whose model embeds it; a modality not here (audio, unknown) is not embedded."""


def active_model_key(role: str) -> str:
    """The ``settings`` key whose value is the model id that search uses for ``role``."""
    return f"active_model.{role}"
