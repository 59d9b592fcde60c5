"""Greedy answers of an LVLM for a batch of (instruction, image) pairs, the prompt built by the model's template."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any, Sequence

from ..contract import MissingInputError, SpecError
from .registry import Benchmark, Item


def find_image(item: Item, data_dir: Path, image_dirs: Sequence[str]) -> Path:
    if item.image is None:
        # Text-only questions (ScienceQA with questions: all) are loaded to score answer files, not to be asked.
        raise SpecError("benchmark.questions", "all", f"questions with an image to generate answers (question "
                        f"{item.question_id!r} has none; score another tool's answers with csr score instead)")
    tried = [data_dir / folder / item.image for folder in image_dirs]
    for path in tried:
        if path.is_file():
            return path
    raise MissingInputError(f"image {item.image!r} of question {item.question_id!r} not found; looked in "
                            f"{[str(p.parent) for p in tried]} (set benchmark.image_dir to the image folder)")


def open_image(item: Item, path: Path | None) -> Any:
    from PIL import Image

    if item.image_b64 is not None:
        return Image.open(io.BytesIO(base64.b64decode(item.image_b64))).convert("RGB")
    with Image.open(path) as image:
        return image.convert("RGB")


def generate_batch(lvlm: Any, benchmark: Benchmark, items: Sequence[Item], images: Sequence[Any],
                   max_new_tokens: int) -> list[tuple[str, str]]:
    """(instruction, answer) per item: one greedy ``generate`` call over the batch, left-padded."""
    import torch

    instructions = [benchmark.prompt(item) for item in items]
    prompts = [lvlm.prompt_text(instruction) for instruction in instructions]
    tokenizer = lvlm.tokenizer
    # Decoder-only generation continues from the last position, so padding must sit on the left.
    tokenizer.padding_side = "left"
    inputs = lvlm.processor(images=list(images), text=prompts, return_tensors="pt", padding=True)
    inputs = inputs.to(lvlm.device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(lvlm.model.dtype)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.inference_mode():
        output = lvlm.model.generate(**inputs, do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                                     pad_token_id=pad_id)
    new_tokens = output[:, inputs["input_ids"].shape[1]:]
    answers = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    return [(instruction, answer.strip()) for instruction, answer in zip(instructions, answers)]
