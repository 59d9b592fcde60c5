"""The tiny CLIP, the reward model's visual judge: a ``CLIPModel`` trained contrastively from scratch.

It learns from true sentences only ("the cup is small and red ." for a scene with a small red cup),
so the co-occurrence prior of the LVLM's training text never reaches it. Each image is also shown
one sentence about an absent kind (the absent partner when the scene is lone), the contrast the
reward model exists to make.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..contract import Progress
from .config import WorldConfig
from .language import sentence
from .lvlm_arch import image_processor, vision_config
from .lvlm_train import lr_at
from .sft_data import normalise
from .vocab import COLOURS, KIND_BY_NAME, KIND_NAMES, PARTNER, SIZES, WORD_TO_KIND


def build(cfg: WorldConfig, tokenizer: Any) -> tuple[Any, Any]:
    """An untrained ``CLIPModel`` and its ``CLIPProcessor``."""
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTextConfig

    text = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.clip_hidden, intermediate_size=cfg.clip_hidden * 4,
        num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        projection_dim=cfg.clip_hidden,
    )
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision_config(cfg, cfg.clip_hidden).to_dict(),
                        projection_dim=cfg.clip_hidden)
    return CLIPModel(config), CLIPProcessor(image_processor=image_processor(), tokenizer=tokenizer)


def true_sentences(objects: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(obj["name"], obj["size"], obj["color"]) for obj in objects]


def absent_sentence(objects: list[dict[str, Any]], rng: np.random.Generator,
                    prefer_partner: bool = True) -> tuple[str, str, str]:
    """A sentence naming a kind the scene lacks, with random attributes: the absent partner when there is one."""
    present = {obj["name"] for obj in objects}
    partners = [PARTNER[name] for name in sorted(present) if name in PARTNER and PARTNER[name] not in present]
    pool = partners if partners and prefer_partner else [name for name in KIND_NAMES if name not in present]
    colours, sizes = list(COLOURS), list(SIZES)
    return (pool[int(rng.integers(len(pool)))], sizes[int(rng.integers(len(sizes)))],
            colours[int(rng.integers(len(colours)))])


def _reworded(triple: tuple[str, str, str], rng: np.random.Generator) -> tuple[str, str, str]:
    """The same claim under a random one of the kind's words."""
    name, size, colour = triple
    words = (name, *KIND_BY_NAME[name].synonyms)
    return words[int(rng.integers(len(words)))], size, colour


def train(model: Any, tokenizer: Any, objects_per_scene: list[list[dict[str, Any]]], images: torch.Tensor, *,
          steps: int, batch_size: int, lr: float, rng: np.random.Generator) -> list[float]:
    """Symmetric InfoNCE over a batch of scenes, plus one absent-kind sentence per image on the image side.

    A batch sentence that happens to be true of another image of the batch is masked out of that
    image's negatives, so the loss never teaches the model to reject a true sentence.
    """
    texts = sorted({sentence(word, size, colour) for word in WORD_TO_KIND for size in SIZES for colour in COLOURS})
    text_index = {text: i for i, text in enumerate(texts)}
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    # Every wording of every true sentence, synonyms included: all of them are true of the scene.
    truths = [{text_index[sentence(word, size, colour)] for name, size, colour in true_sentences(objects)
               for word in WORD_TO_KIND if WORD_TO_KIND[word] == name} for objects in objects_per_scene]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    order = np.concatenate([rng.permutation(len(objects_per_scene))
                            for _ in range(math.ceil(steps * batch_size / len(objects_per_scene)) + 1)])
    progress = Progress(step="clip", total=steps, unit="steps")
    progress.start()
    losses = []
    model.train()
    for step in range(steps):
        scenes = order[step * batch_size:(step + 1) * batch_size]
        positives = [sorted(truths[s])[int(rng.integers(len(truths[s])))] for s in scenes]
        negatives = [text_index[sentence(*_reworded(absent_sentence(objects_per_scene[s], rng, rng.random() < 0.5),
                                                     rng))] for s in scenes]
        candidates = torch.tensor(positives + negatives)
        image_out = model.get_image_features(pixel_values=normalise(images[torch.as_tensor(scenes)]))
        text_out = model.get_text_features(input_ids=encoded["input_ids"][candidates],
                                           attention_mask=encoded["attention_mask"][candidates])
        image_embeds = F.normalize(image_out.pooler_output, dim=-1)
        text_embeds = F.normalize(text_out.pooler_output, dim=-1)
        logits = model.logit_scale.exp() * image_embeds @ text_embeds.T
        true_elsewhere = torch.tensor([[int(c) in truths[s] for c in candidates] for s in scenes])
        diagonal = torch.zeros_like(true_elsewhere)
        diagonal[torch.arange(len(scenes)), torch.arange(len(scenes))] = True
        logits = logits.masked_fill(true_elsewhere & ~diagonal, float("-inf"))
        targets = torch.arange(len(scenes))
        loss = (F.cross_entropy(logits, targets) + F.cross_entropy(logits[:, :len(scenes)].T, targets)) / 2
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, steps, lr)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(float(loss.detach()))
        progress.advance(loss=round(losses[-1], 4))
    model.eval()
    return losses
