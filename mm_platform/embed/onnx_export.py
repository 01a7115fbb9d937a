"""ONNX Runtime on CPU for the packaged models: export once, verify against torch, cache, load sessions.

On one CPU thread ONNX Runtime runs EfficientNet-Lite0 ~3x faster than torch eager (BENCHMARKS.md), and a
process that finds the exported file in the cache never imports torch at all (``mmp search`` starts in a
fraction of the time). The file is exported from the same packaged weights with ``torch.onnx.export`` the
first time a model is needed, then *verified*: ONNX Runtime's outputs on a fixed probe input must match
torch's (cosine >= ``MIN_COSINE``) or the export is discarded and the caller stays on torch. Only a verified
file is ever moved into the cache, under a name that carries the weights' revision (their SHA-256), so new
weights or new preprocessing code get a new file and an edited wheel never reuses a stale graph.

Cache folder: ``$MM_CACHE_DIR``, else ``$XDG_CACHE_HOME/mm-platform``, else ``~/.cache/mm-platform``.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from time import perf_counter
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from mm_platform.log import get_logger, kv
from mm_platform.machine import usable_cpus

__all__ = [
    "EXPORT_FORMAT",
    "MIN_COSINE",
    "ExportMismatchError",
    "Runtime",
    "cache_dir",
    "cached_onnx",
    "onnx_session_or_none",
    "onnxruntime_available",
    "ort_session",
    "resolve_runtime",
    "worst_cosine",
]

log = get_logger("mm_platform.embed.onnx")

Runtime = Literal["auto", "torch", "onnx"]
"""``auto``: ONNX Runtime on CPU when it is installed, torch on CUDA (or when ONNX Runtime is missing)."""

OPSET = 17
EXPORT_FORMAT = "e1"
"""Bump when what we export changes (graph outputs, opset); part of every cached file's name."""
MIN_COSINE = 0.99999
"""An export is kept only if every probe vector agrees with torch's at least this well (vectors stored by
either runtime then count as the same revision: see README, "Runtimes")."""


class ExportMismatchError(RuntimeError):
    """ONNX Runtime's outputs did not match torch's on the probe input: the export is not used."""


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def resolve_runtime(runtime: Runtime, device: str) -> Literal["torch", "onnx"]:
    """The runtime ``runtime`` means on ``device``: ONNX Runtime serves CPUs only (torch stays on CUDA)."""
    if runtime == "onnx" and device != "cpu":
        raise ValueError(f"the ONNX Runtime backend runs on the CPU only, not on {device!r}")
    if runtime == "auto":
        return "onnx" if device == "cpu" and onnxruntime_available() else "torch"
    return runtime


def cache_dir() -> Path:
    """Where exported models live (read when called, so a test or a deployment can point it elsewhere)."""
    explicit = os.environ.get("MM_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mm-platform"


def cached_onnx(
    name: str,
    revision: str,
    export: Callable[[Path], None],
    verify: Callable[[Path], float],
) -> Path:
    """The cached ``.onnx`` file of ``name`` at ``revision``, exporting and verifying it on first use.

    ``export(path)`` writes the graph; ``verify(path)`` returns the worst cosine between ONNX Runtime and
    torch on a probe input. The file appears in the cache by an atomic rename, so concurrent processes
    (probe workers, Dagster steps) see either nothing or a complete, verified file.
    """
    folder = cache_dir() / "onnx"
    path = folder / f"{name}-{revision}-opset{OPSET}-{EXPORT_FORMAT}.onnx"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    started = perf_counter()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}-", suffix=".onnx.tmp", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer chatter about constant folding: verify() is the judge
            export(tmp)
        worst = verify(tmp)
        if not worst >= MIN_COSINE:
            raise ExportMismatchError(
                f"ONNX export of {name} disagrees with torch (worst cosine {worst:.7f} < {MIN_COSINE})"
            )
        tmp.chmod(0o644)  # mkstemp makes it private; the cache is for every process of the user
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("exported model to ONNX %s", kv(model=name, path=str(path), seconds=f"{perf_counter() - started:.1f}"))
    return path


def onnx_session_or_none(embedder: Any, export: Callable[[Path], None], verify: Callable[[Path], float]) -> Any:
    """``embedder``'s ONNX Runtime session, or None after switching it to torch if no verified export exists.

    ``embedder`` has ``model_id``, ``revision``, ``ort_threads`` and a mutable ``runtime``.
    """
    try:
        path = cached_onnx(embedder.model_id.replace("/", "--"), embedder.revision, export, verify)
    except Exception as exc:  # an exporter or ONNX Runtime failure must not stop ingestion: torch still works
        log.warning("ONNX Runtime not used, falling back to torch %s", kv(model=embedder.model_id, error=str(exc)))
        embedder.runtime = "torch"
        return None
    return ort_session(path, embedder.ort_threads)


def ort_session(path: Path, threads: int | None) -> Any:
    """An ONNX Runtime CPU session with ``threads`` intra-op threads (None: one per usable core).

    Threads do not spin while idle: the probe workers decoding beside the model need those cores. Every core
    rather than one: on the 2-core machine a 96-image batch took 1.24 s instead of 1.6 s (the model is the
    long pole once decoding is done; benchmarks.pipeline), with the same CPU time.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = threads or usable_cpus()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # warnings about unused initializers etc. are not the user's business
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def worst_cosine(a: Sequence[NDArray[np.floating]], b: Sequence[NDArray[np.floating]]) -> float:
    """The smallest row-wise cosine over pairs of matrices (the verification's figure of merit)."""
    worst = 1.0
    for x, y in zip(a, b, strict=True):
        x64 = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        y64 = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        dots = np.sum(x64 * y64, axis=1)
        norms = np.linalg.norm(x64, axis=1) * np.linalg.norm(y64, axis=1)
        cosines = np.where(norms > 0, dots / np.maximum(norms, 1e-30), 1.0)
        worst = min(worst, float(cosines.min(initial=1.0)))
    return worst
