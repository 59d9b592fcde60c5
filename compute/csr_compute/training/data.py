"""The curated pairs (LLaVA/CSR conversation format) as a TRL vision preference data set."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..contract import MissingInputError, SpecError


def _answer(conversation: Any, where: str) -> tuple[str, str]:
    if (not isinstance(conversation, list) or len(conversation) != 2
            or conversation[0].get("from") != "human" or conversation[1].get("from") != "gpt"):
        raise SpecError(where, conversation, "[{from: human, value}, {from: gpt, value}]")
    return conversation[0]["value"], conversation[1]["value"]


def to_trl_records(pairs: list[dict[str, Any]], images_dir: str | None) -> list[dict[str, Any]]:
    """Conversational prompt/chosen/rejected with one image each, as TRL's vision collator expects.

    The ``<image>`` marker is taken out of the instruction: TRL inserts the image into the user turn,
    and the chat template places it, as in generation (``LoadedLvlm.prompt_text``).
    """
    records = []
    for index, pair in enumerate(pairs):
        where = f"pairs[{index}] (id {pair.get('id')!r})"
        instruction, chosen = _answer(pair.get("conversations"), f"{where}.conversations")
        rejected_instruction, rejected = _answer(pair.get("rejected_conversations"), f"{where}.rejected_conversations")
        if rejected_instruction != instruction:
            raise SpecError(f"{where}.rejected_conversations", rejected_instruction, "the same human turn as conversations")
        image = Path(pair["image"])
        if not image.is_absolute() and images_dir:
            image = Path(images_dir) / image
        if not image.is_file():
            raise MissingInputError(f"{where}: image {str(image)!r} does not exist")
        text = instruction.replace("<image>", "").strip()
        records.append({
            "images": [os.fspath(image)],
            "prompt": [{"role": "user", "content": text}],
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
        })
    return records


def to_dataset(records: list[dict[str, Any]]) -> Any:
    """A ``datasets.Dataset`` whose images are decoded from their paths only when a batch needs them."""
    from datasets import Dataset, Image, Sequence

    return Dataset.from_list(records).cast_column("images", Sequence(Image()))
