"""Randomly initialised LLaVA models of a chosen size, built from configs (no weights to download).

The benchmarks need LLaVA-shaped models whose prompts have the real length (LLaVA-1.5: a 336 px image in
14 px patches = 576 image tokens) at a size the machine runs in minutes. The tokenizer, chat template and
processor are the tiny test model's (word-level, every id decodes to a word), so the tree search behaves
as it does in the tests. Shapes:

- ``mid``: CLIP tower 1 x 64, Llama 2 x 768 (12 heads, MLP 2048), 576 image tokens; a 2-core CPU runs it.
  Its width keeps attention over the ~590-token prompt at ~13 % of a token's compute (7B: ~2.4 %); a
  narrower model (4 x 256: ~38 %) would make the prompt, not the weights, dominate every token.
- ``7b``: CLIP ViT-L/14-336 tower (24 x 1024), Llama 32 x 4096 (32 heads, MLP 11008): LLaVA-1.5-7B's shapes.
- ``tiny``: the test model's sizes with 576 image tokens (for dry runs of the GPU script on a CPU).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SHAPES = {
    "tiny": {"vision": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2},
             "text": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                      "num_key_value_heads": 2}},
    "mid": {"vision": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2},
            "text": {"hidden_size": 768, "intermediate_size": 2048, "num_hidden_layers": 2, "num_attention_heads": 12,
                     "num_key_value_heads": 12}},
    "7b": {"vision": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16},
           "text": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
                    "num_key_value_heads": 32}},
}


def build_random_llava(folder: str | Path, shape: str = "mid", seed: int = 0, image_size: int = 336,
                       patch_size: int = 14) -> Path:
    """Save a random LLaVA of ``shape`` (see ``SHAPES``) with the tiny model's tokenizer and a 336 px processor."""
    folder = Path(folder)
    model, processor = random_llava(shape, seed, image_size, patch_size)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def random_llava(shape: str = "mid", seed: int = 0, image_size: int = 336, patch_size: int = 14,
                 device: str = "cpu", dtype: str = "float32") -> tuple[Any, Any]:
    """A random LLaVA of ``shape`` built in memory on ``device`` (a 7B one is never written to disk)."""
    import torch
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    from csr_compute.fixtures.tiny_models import CHAT_TEMPLATE, _tokenizer

    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; one of {', '.join(SHAPES)}")
    tokenizer = _tokenizer(eos_suffix=False)
    num_patches = (image_size // patch_size) ** 2
    text_config = LlamaConfig(
        vocab_size=len(tokenizer), max_position_embeddings=4096, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=None, initializer_range=0.2, tie_word_embeddings=False,
        **SHAPES[shape]["text"],
    )
    vision_config = CLIPVisionConfig(image_size=image_size, patch_size=patch_size, projection_dim=32,
                                     **SHAPES[shape]["vision"])
    config = LlavaConfig(
        vision_config=vision_config, text_config=text_config, image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1, vision_feature_select_strategy="default", image_seq_length=num_patches,
        projector_hidden_act="gelu", pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        with torch.device(device):
            model = LlavaForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(torch.float32)
    model.eval()
    with torch.no_grad():
        # As in the tiny test model: stronger "." and "</s>" rows, so that sentences and responses end.
        head = model.lm_head.weight
        for token, scale in ((".", 2.0), ("</s>", 1.5)):
            head[tokenizer.convert_tokens_to_ids(token)] *= scale
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    image_processor = CLIPImageProcessor(size={"shortest_edge": image_size},
                                         crop_size={"height": image_size, "width": image_size})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=patch_size,
                               vision_feature_select_strategy="default", chat_template=CHAT_TEMPLATE,
                               image_token="<image>", num_additional_image_tokens=1)
    return model, processor
