"""The tiny CLIP, the reward model's visual judge: a ``CLIPModel`` trained contrastively from scratch.

It learns from true sentences only ("the cup is small ." for a scene with a small cup),
so the co-occurrence prior of the LVLM's training text never reaches it. Every false sentence of the
world, the absent partner's included, is a negative for every image: the contrast the reward model
exists to make. Each patch (one grid cell) is also trained to match its own object's sentences,
which teaches the image tower to see long before the pooled embedding alone would.
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
from .scenes import IMAGE_SIZE
from .vocab import KIND_BY_NAME, KIND_NAMES, PARTNER, POSITIONS, SIZES, WORD_TO_KIND


def build(cfg: WorldConfig, tokenizer: Any) -> tuple[Any, Any]:
    """An untrained ``CLIPModel`` and its ``CLIPProcessor``."""
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTextConfig

    text = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.clip_text_hidden, intermediate_size=cfg.clip_text_hidden * 4,
        num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        projection_dim=cfg.clip_vision_hidden,
    )
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision_config(cfg, cfg.clip_vision_hidden).to_dict(),
                        projection_dim=cfg.clip_vision_hidden)
    return CLIPModel(config), CLIPProcessor(image_processor=image_processor(), tokenizer=tokenizer)


def true_sentences(objects: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The (kind, size) claims true of a scene."""
    return [(obj["name"], obj["size"]) for obj in objects]


def absent_sentence(objects: list[dict[str, Any]], rng: np.random.Generator,
                    prefer_partner: bool = True) -> tuple[str, str]:
    """A (kind, size) claim about a kind the scene lacks: its absent partner when there is one."""
    present = {obj["name"] for obj in objects}
    partners = [PARTNER[name] for name in sorted(present) if name in PARTNER and PARTNER[name] not in present]
    pool = partners if partners and prefer_partner else [name for name in KIND_NAMES if name not in present]
    sizes = list(SIZES)
    return pool[int(rng.integers(len(pool)))], sizes[int(rng.integers(len(sizes)))]


def _set_loss(logits: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """-log of the probability mass on the true candidates, averaged over rows."""
    return (torch.logsumexp(logits, dim=-1) - torch.logsumexp(logits.masked_fill(~true, float("-inf")), dim=-1)).mean()


def _cell_truth(objects_per_scene: list[list[dict[str, Any]]], text_index: dict[str, int],
                patch_size: int) -> torch.Tensor:
    """Per scene and patch, which sentences are true of the object in that patch's cell (none if empty)."""
    grid = IMAGE_SIZE // patch_size
    cell_of_patch = [(row * 2 // grid) * 2 + col * 2 // grid for row in range(grid) for col in range(grid)]
    truth = torch.zeros((len(objects_per_scene), grid * grid, len(text_index)), dtype=torch.bool)
    for scene, objects in enumerate(objects_per_scene):
        for obj in objects:
            cell = POSITIONS.index(obj["position"])
            for word in (obj["name"], *KIND_BY_NAME[obj["name"]].synonyms):
                column = text_index[sentence(word, obj["size"])]
                for patch, patch_cell in enumerate(cell_of_patch):
                    if patch_cell == cell:
                        truth[scene, patch, column] = True
    return truth


def train(model: Any, tokenizer: Any, objects_per_scene: list[list[dict[str, Any]]], images: torch.Tensor, *,
          steps: int, batch_size: int, lr: float, rng: np.random.Generator) -> list[float]:
    """Contrastive training against every sentence the world can say, not only the batch's.

    The world has a few hundred distinct sentences, so each step scores every image against all of
    them: image -> text maximises the probability of the image's true sentences (all wordings) among
    all; text -> image is the usual InfoNCE over the batch for one true sentence per image, with
    images of which that sentence is also true left out of its negatives; patch -> text is the
    image -> text loss for each occupied cell's patch and its object's sentences.
    """
    texts = sorted({sentence(word, size) for word in WORD_TO_KIND for size in SIZES})
    text_index = {text: i for i, text in enumerate(texts)}
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    truth = torch.zeros((len(objects_per_scene), len(texts)), dtype=torch.bool)
    for scene, objects in enumerate(objects_per_scene):
        for name, size in true_sentences(objects):
            for word in (name, *KIND_BY_NAME[name].synonyms):
                truth[scene, text_index[sentence(word, size)]] = True
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    order = np.concatenate([rng.permutation(len(objects_per_scene))
                            for _ in range(math.ceil(steps * batch_size / len(objects_per_scene)) + 1)])
    progress = Progress(step="clip", total=steps, unit="steps")
    progress.start()
    losses = []
    model.train()
    cells = _cell_truth(objects_per_scene, text_index, model.config.vision_config.patch_size)
    for step in range(steps):
        scenes = torch.as_tensor(order[step * batch_size:(step + 1) * batch_size])
        vision = model.vision_model(pixel_values=normalise(images[scenes]))
        image_embeds = F.normalize(model.visual_projection(vision.pooler_output), dim=-1)
        patch_embeds = F.normalize(model.visual_projection(model.vision_model.post_layernorm(
            vision.last_hidden_state[:, 1:])), dim=-1)
        text_embeds = F.normalize(model.get_text_features(**encoded).pooler_output, dim=-1)
        scale = model.logit_scale.exp()
        true = truth[scenes]
        image_loss = _set_loss(scale * image_embeds @ text_embeds.T, true)
        # Grounding, as for the LVLM: each patch must match the sentences of the object in its cell.
        patch_true = cells[scenes]
        occupied = patch_true.any(dim=-1)
        patch_loss = _set_loss((scale * patch_embeds @ text_embeds.T)[occupied], patch_true[occupied])
        positives = torch.tensor([int(rng.choice(np.flatnonzero(row.numpy()))) for row in true])
        per_text = scale * text_embeds[positives] @ image_embeds.T
        also_true = true[:, positives].T & ~torch.eye(len(scenes), dtype=torch.bool)
        text_loss = F.cross_entropy(per_text.masked_fill(also_true, float("-inf")), torch.arange(len(scenes)))
        loss = (image_loss + text_loss + patch_loss) / 3
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
