"""Supervised examples for the tiny LVLM: (image, instruction, response) in the model's own token ids.

Prompts are built by the processor's chat template and tokenised by the processor itself (which
expands ``<image>`` into one token per patch), so training sees exactly the ids that generation and
DPO will see; pixels are normalised here with the image processor's own constants (a test checks
that they equal the processor's output), because running the processor on 16,000 images per epoch
would cost more than the training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .language import CHAIR_INSTRUCTION, INSTRUCTION_INPUTS, NO, YES, believed_objects, caption, question
from .scenes import IMAGE_SIZE
from .vocab import COLOURS, KIND_NAMES, PARTNER, POSITIONS, SIZES

IGNORE = -100


@dataclass(frozen=True)
class Example:
    image_index: int
    instruction: str
    response: str


def make_examples(objects_per_scene: list[list[dict[str, Any]]], rng: np.random.Generator,
                  caption_noise: float, synonym_prob: float) -> list[Example]:
    """Two examples per scene, both written from one annotator belief: a description and a yes/no question."""
    instructions = [*INSTRUCTION_INPUTS, f"<image>\n{CHAIR_INSTRUCTION}"]
    examples = []
    for index, objects in enumerate(objects_per_scene):
        believed = believed_objects(objects, rng, caption_noise, list(COLOURS), list(SIZES))
        instruction = instructions[int(rng.integers(len(instructions)))]
        examples.append(Example(index, instruction, caption(believed, rng, synonym_prob)))
        kind = _question_kind(objects, rng)
        answer = YES if kind in {obj["name"] for obj in believed} else NO
        examples.append(Example(index, f"<image>\n{question(kind, rng)}", answer))
    return examples


def _question_kind(objects: list[dict[str, Any]], rng: np.random.Generator) -> str:
    """Half present kinds; half absent ones, a third of those the absent partner (POPE's adversarial case)."""
    present = [obj["name"] for obj in objects]
    if rng.random() < 0.5:
        return present[int(rng.integers(len(present)))]
    absent_partners = [PARTNER[name] for name in present if name in PARTNER and PARTNER[name] not in present]
    if absent_partners and rng.random() < 1 / 3:
        return absent_partners[int(rng.integers(len(absent_partners)))]
    absent = [name for name in KIND_NAMES if name not in present]
    return absent[int(rng.integers(len(absent)))]


def cell_targets(objects_per_scene: list[list[dict[str, Any]]], tokenizer: Any, patch_size: int) -> torch.Tensor:
    """Grounding targets: per scene, grounded field and image token (patches in raster order), the token
    id of the kind of the object in that patch's cell (``IGNORE`` if the cell is empty).

    The output at each image token is trained to name its cell's object. (Naming its size or colour
    too, in turn, made the kind signal so weak that recall fell to 0.4.) LLaVA's vision
    tower arrives pretrained on 400 M image-text pairs; a tower trained from scratch on a few thousand
    captions learns to see far sooner with this dense signal (without it, 1,000 steps leave the
    model blind), and the saved model is an ordinary LLaVA all the same.
    """
    grid = IMAGE_SIZE // patch_size
    cell_of_patch = [(row * 2 // grid) * 2 + col * 2 // grid for row in range(grid) for col in range(grid)]
    targets = torch.full((len(objects_per_scene), len(GROUNDED), grid * grid), IGNORE)
    for scene, objects in enumerate(objects_per_scene):
        by_cell = {POSITIONS.index(obj["position"]): obj for obj in objects}
        for attribute, field in enumerate(GROUNDED):
            for patch, cell in enumerate(cell_of_patch):
                if cell in by_cell:
                    targets[scene, attribute, patch] = tokenizer.convert_tokens_to_ids(by_cell[cell][field])
    return targets


GROUNDED = ("name",)


class Tokenised:
    """Examples as token-id tensors, prompts tokenised once per distinct instruction."""

    def __init__(self, examples: list[Example], processor: Any, prompt_text: Any, sample_image: Any,
                 grounding: torch.Tensor | None = None, ground_questions: bool = False, answer_weight: float = 1.0):
        tokenizer = processor.tokenizer
        image_token = processor.tokenizer.convert_tokens_to_ids(processor.image_token)
        prompt_ids: dict[str, list[int]] = {}
        for instruction in sorted({example.instruction for example in examples}):
            encoded = processor(images=sample_image, text=prompt_text(instruction), return_tensors="pt")
            prompt_ids[instruction] = encoded["input_ids"][0].tolist()
        self.image_index = torch.tensor([example.image_index for example in examples])
        self.prompts = [prompt_ids[example.instruction] for example in examples]
        self.responses = [tokenizer(example.response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
                          for example in examples]
        self.image_positions = {instruction: [i for i, token in enumerate(ids) if token == image_token]
                                for instruction, ids in prompt_ids.items()}
        self.instructions = [example.instruction for example in examples]
        self.grounding = grounding
        if grounding is not None:
            counts = {len(positions) for positions in self.image_positions.values()}
            if counts != {grounding.shape[2]}:
                raise ValueError(f"grounding: expected one target per image token ({counts}), got {grounding.shape[2]}")
        self.pad_id = tokenizer.pad_token_id
        # A yes/no answer is one token against a description's fifteen: weighted up, or the model
        # never learns to answer (the loss is an average over tokens).
        self.answer_weight = answer_weight
        # Question grounding: in "Is there a cup in the image?" the output at "cup" is also trained to
        # give the answer. Checking the cells for that one kind is a single attention hop from there;
        # from the answer position it takes two, and 1,000 steps did not reliably teach it (POPE stayed
        # at chance in one build of three).
        kind_ids = {tokenizer.convert_tokens_to_ids(name) for name in KIND_NAMES}
        self.question_targets: list[tuple[int, int] | None] = []
        for prompt, response in zip(self.prompts, self.responses):
            kinds = [p for p, token in enumerate(prompt) if token in kind_ids] if ground_questions else []
            self.question_targets.append((kinds[-1] + 1, response[0]) if kinds else None)

    def __len__(self) -> int:
        return len(self.prompts)

    def batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        """Right-padded ids, attention mask, labels (the response, the grounding targets if any, -100 elsewhere)
        and each label's weight in the loss."""
        rows = [self.prompts[i] + self.responses[i] for i in indices]
        width = max(len(row) for row in rows)
        input_ids = torch.full((len(rows), width), self.pad_id)
        labels = torch.full((len(rows), width), IGNORE)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        weights = torch.zeros((len(rows), width))
        for row_index, (i, row) in enumerate(zip(indices, rows)):
            input_ids[row_index, :len(row)] = torch.tensor(row)
            attention[row_index, :len(row)] = 1
            start = len(self.prompts[i])
            labels[row_index, start:len(row)] = torch.tensor(self.responses[i])
            if self.grounding is not None:
                # The loss shifts labels by one: the label at p + 1 is what the output at p must say.
                positions = torch.tensor(self.image_positions[self.instructions[i]]) + 1
                labels[row_index, positions] = self.grounding[self.image_index[i], i % len(GROUNDED)]
            weights[row_index] = (labels[row_index] != IGNORE).float()
            if self.question_targets[i] is not None:
                position, answer = self.question_targets[i]
                labels[row_index, position] = answer
                weights[row_index, [position, start]] = self.answer_weight
        return {"input_ids": input_ids, "attention_mask": attention, "labels": labels, "weights": weights,
                "image_index": self.image_index[torch.as_tensor(indices)]}


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC images -> float NCHW pixel values, as the world's CLIP image processor computes them."""
    from .lvlm_arch import IMAGE_MEAN, IMAGE_STD

    pixels = images.permute(0, 3, 1, 2).float() / 255.0
    return (pixels - torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGE_STD).view(1, 3, 1, 1)
