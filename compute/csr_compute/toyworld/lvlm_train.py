"""Supervised fine-tuning of the tiny LVLM from scratch: a plain PyTorch loop.

Read top to bottom: seeded data order, AdamW with warm-up and cosine decay, a weighted next-token
loss (responses plus the grounding targets of ``sft_data``), gradient clipping, one progress event
per step.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..contract import Progress
from .sft_data import IGNORE, Tokenised, normalise


def lr_at(step: int, steps: int, peak: float, warmup_share: float = 0.05) -> float:
    warmup = max(1, int(steps * warmup_share))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))


def weighted_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy, each label weighted (the model's own loss weighs all labels alike)."""
    targets, weights = labels[:, 1:], weights[:, 1:]
    per_token = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                                ignore_index=IGNORE, reduction="none")
    return (per_token * weights.reshape(-1)).sum() / weights.sum().clamp(min=1e-9)


def train(model: Any, data: Tokenised, images: torch.Tensor, *, steps: int, batch_size: int, lr: float,
          rng: np.random.Generator, progress_step: str = "lvlm") -> list[float]:
    """Train ``model`` in place; returns the loss of every step.

    ``images`` holds every scene's uint8 pixels (N, 64, 64, 3); examples refer to them by index.
    """
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    # Plain shuffled batches: grouping examples by length (HF's group_by_length) saves padding but
    # makes batches all-question or all-description, and then the model never learns to answer.
    order = np.concatenate([rng.permutation(len(data)) for _ in range(math.ceil(steps * batch_size / len(data)) + 1)])
    progress = Progress(step=progress_step, total=steps, unit="steps")
    progress.start()
    losses = []
    model.train()
    for step in range(steps):
        batch = data.batch(order[step * batch_size:(step + 1) * batch_size])
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, steps, lr)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       pixel_values=normalise(images[batch["image_index"]])).logits
        loss = weighted_loss(logits, batch["labels"], batch["weights"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
        progress.advance(loss=round(losses[-1], 4))
    model.eval()
    return losses
