"""Supervised fine-tuning of the tiny LVLM from scratch: a plain PyTorch loop, response tokens only.

Read top to bottom: seeded data order, AdamW with warm-up and cosine decay, gradient clipping,
one progress event per step.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..contract import Progress
from .sft_data import Tokenised, normalise


def lr_at(step: int, steps: int, peak: float, warmup_share: float = 0.05) -> float:
    warmup = max(1, int(steps * warmup_share))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))


def length_grouped_batches(lengths: np.ndarray, batch_size: int, count: int, rng: np.random.Generator,
                           group: int = 32) -> list[np.ndarray]:
    """``count`` batches of examples of similar length (HF's ``group_by_length``): padding costs CPU time.

    Each epoch is shuffled, cut into runs of ``group`` batches, each run sorted by length and split
    into batches; the batches are then shuffled, so the order stays random.
    """
    if len(lengths) < batch_size:
        raise ValueError(f"batch_size: expected at most the {len(lengths)} training examples, got {batch_size}")
    batches: list[np.ndarray] = []
    while len(batches) < count:
        epoch = rng.permutation(len(lengths))
        epoch_batches = []
        for start in range(0, len(epoch) - batch_size + 1, batch_size * group):
            run = epoch[start:start + batch_size * group]
            run = run[np.argsort(lengths[run], kind="stable")]
            epoch_batches += [run[i:i + batch_size] for i in range(0, len(run) - batch_size + 1, batch_size)]
        batches += [epoch_batches[i] for i in rng.permutation(len(epoch_batches))]
    return batches[:count]


def train(model: Any, data: Tokenised, images: torch.Tensor, *, steps: int, batch_size: int, lr: float,
          rng: np.random.Generator, progress_step: str = "lvlm") -> list[float]:
    """Train ``model`` in place; returns the loss of every step.

    ``images`` holds every scene's uint8 pixels (N, 64, 64, 3); examples refer to them by index.
    """
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    batches = length_grouped_batches(data.lengths(), batch_size, steps, rng)
    progress = Progress(step=progress_step, total=steps, unit="steps")
    progress.start()
    losses = []
    model.train()
    for step in range(steps):
        batch = data.batch(batches[step])
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, steps, lr)
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    pixel_values=normalise(images[batch["image_index"]]), labels=batch["labels"])
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(float(out.loss.detach()))
        progress.advance(loss=round(losses[-1], 4))
    model.eval()
    return losses
