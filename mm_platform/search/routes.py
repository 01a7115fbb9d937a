"""How a query reaches media: which model's vectors (or labels) it is compared with, and its query vector.

* text → images/video: through the image model itself when it is a joint text/image model (CLIP), else
  through the label bridge (the query against the image model's ImageNet labels, ``derived`` rows of kind
  ``label``);
* text → documents: the text model's vectors (MiniLM);
* image → images/video: the image model's vectors.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from mm_platform.embed import (
    EfficientNetLite0Embedder,
    Embedder,
    MiniLMTextEmbedder,
    Modality,
    embedder_for,
)
from mm_platform.errors import ConfigError
from mm_platform.log import get_logger, kv
from mm_platform.pictures import embedding_input
from mm_platform.roles import IMAGE_MODALITIES, TEXT_MODALITIES
from mm_platform.search.active import ActiveModel, ActiveModels

__all__ = ["Query", "Route", "embed_query", "plan_routes", "spec_for"]

log = get_logger("mm_platform.search.routes")
Query = str | Path | bytes | Image.Image
"""A text (str) or an image (a path, encoded bytes or a PIL image)."""

_SPECS = {EfficientNetLite0Embedder.MODEL_ID: "efficientnet-lite0", MiniLMTextEmbedder.MODEL_ID: "minilm"}


@dataclass(frozen=True)
class Route:
    """One ranking of media for a query."""

    name: str
    """``clip`` | ``label-bridge`` | ``text`` | ``image``."""
    model: ActiveModel
    """The model whose vectors (or labels) are ranked."""
    modalities: tuple[str, ...]

    @property
    def uses_vectors(self) -> bool:
        return self.name != "label-bridge"


def spec_for(model_id: str) -> str:
    """The embedder spec (``embedder_for``) that produces ``model_id``'s vectors; other ids are CLIP models."""
    return _SPECS.get(model_id, f"clip:{model_id}")


def is_joint(model_id: str) -> bool:
    return spec_for(model_id).startswith("clip:")


def plan_routes(query: Query, models: ActiveModels) -> list[Route]:
    if isinstance(query, str):
        routes = []
        if models.image is not None:
            name = "clip" if is_joint(models.image.model_id) else "label-bridge"
            routes.append(Route(name, models.image, IMAGE_MODALITIES))
        if models.text is not None:
            routes.append(Route("text", models.text, TEXT_MODALITIES))
        return routes
    return [] if models.image is None else [Route("image", models.image, IMAGE_MODALITIES)]


def embed_query(route: Route, query: Query) -> NDArray[np.float32]:
    """The query as a unit vector in the route model's space."""
    modality: Modality = "text" if isinstance(query, str) else "image"
    spec = spec_for(route.model.model_id)
    embedder: Embedder[Any] = embedder_for(spec, modality)
    if embedder.model_id != route.model.model_id:
        raise ConfigError(f"{spec!r} loads {embedder.model_id!r}, not {route.model.model_id!r}")
    if embedder.revision != route.model.revision:
        log.warning(
            "query model revision differs from the stored vectors' %s",
            kv(model=embedder.model_id, query=embedder.revision, stored=route.model.revision),
        )
    item: Any = query if isinstance(query, str) else _picture(query)
    return embedder.encode([item])[0]


def _picture(query: Query) -> Image.Image:
    """An image query, prepared exactly as the pipeline prepares images, so a stored image finds itself."""
    if isinstance(query, Image.Image):
        buffer = io.BytesIO()
        query.save(buffer, format="PNG")
        return embedding_input(buffer.getvalue())
    try:
        return embedding_input(query if isinstance(query, bytes) else Path(query).read_bytes())
    except OSError as exc:
        raise ConfigError(f"the query image could not be read: {exc}", hint="give a JPEG, PNG, WebP, … file") from exc
