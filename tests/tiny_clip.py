"""A tiny randomly initialised CLIP, built offline, for testing the joint-model code path (mechanics only)."""

from __future__ import annotations

import json
from pathlib import Path


def build_tiny_clip(root: Path) -> Path:
    """A randomly initialised CLIP in sentence-transformers' CLIP layout, built offline in a few ms.

    The tokenizer is byte-level BPE with no merges: the 256 byte symbols (with and without the
    end-of-word marker) plus CLIP's two special tokens is all ``CLIPTokenizer`` needs.
    """
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    symbols = list(bytes_to_unicode().values())
    tokens = [*symbols, *(s + "</w>" for s in symbols), "<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(tokens)}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    special = {"bos_token_id": vocab["<|startoftext|>"], "eos_token_id": vocab["<|endoftext|>"]}
    tiny = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    config = CLIPConfig(
        text_config={**tiny, **special, "pad_token_id": special["eos_token_id"], "vocab_size": len(vocab)},
        vision_config={**tiny, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    torch.manual_seed(0)
    module_dir = root / "0_CLIPModel"
    CLIPModel(config).save_pretrained(module_dir)
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(module_dir)
    modules = [{"idx": 0, "name": "0", "path": "0_CLIPModel", "type": "sentence_transformers.models.CLIPModel"}]
    (root / "modules.json").write_text(json.dumps(modules))
    return root
