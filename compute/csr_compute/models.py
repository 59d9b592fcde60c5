"""Loading the two model kinds every step uses, the same way for the toy world and for LLaVA-1.5.

An LVLM is any folder that ``LlavaForConditionalGeneration.from_pretrained`` and
``AutoProcessor.from_pretrained`` load (e.g. ``llava-hf/llava-1.5-7b-hf`` downloaded beforehand, a
merged CSR checkpoint, or the toy world's ``lvlm/``). The processor carries the chat template, so the
prompt is built by the folder's own template, never by a string hard-coded here.

A CLIP judge is any folder that ``CLIPModel`` / ``CLIPProcessor`` load
(e.g. ``openai/clip-vit-large-patch14-336`` or the toy world's ``clip/``).

Loading never reaches a model hub: ``local_files_only=True``. A missing folder is a
``MissingInputError`` (not retried), naming the path.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .contract import CLOCK, MissingInputError, SpecError

DEFAULT_CHAT_TEMPLATE_FALLBACK = "USER: <image>\n{instruction} ASSISTANT:"


def resolve_device(device: str = "auto") -> str:
    """``auto`` picks the GPU the worker was pinned to (CUDA_VISIBLE_DEVICES) or the CPU."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SpecError("device", device, "'auto', 'cpu', or a CUDA device on a host that has one")
    return device


def resolve_dtype(dtype: str, device: str) -> Any:
    """``auto`` = bf16 on a GPU that supports it, fp32 otherwise (CPU bf16 matmuls are slow here)."""
    import torch

    if dtype == "auto":
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in table:
        raise SpecError("dtype", dtype, f"one of auto, {', '.join(table)}")
    return table[dtype]


def _require_folder(path: str | os.PathLike[str], what: str) -> Path:
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise MissingInputError(f"{what} folder {str(folder)!r} has no config.json (not a saved model folder)")
    # A damaged config.json would surface as a transformers traceback and a retry; it is the input's fault.
    try:
        config = json.loads((folder / "config.json").read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SpecError(f"{what} model", str(folder / "config.json"),
                        f"a JSON model config ({type(error).__name__} at {getattr(error, 'start', getattr(error, 'pos', '?'))})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise SpecError(f"{what} model", str(folder / "config.json"), "a model config with a model_type")
    return folder


@dataclass
class LoadedLvlm:
    model: Any
    processor: Any
    device: str

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    def prompt_text(self, instruction: str) -> str:
        """The full prompt for one instruction, through the folder's own chat template.

        Instructions from the LLaVA prompt sets carry an ``<image>`` marker at their start or end;
        it is removed here because the template places the image itself.
        """
        text = instruction.replace("<image>", "").strip()
        conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
        if getattr(self.processor, "chat_template", None):
            return self.processor.apply_chat_template(conversation, add_generation_prompt=True)
        return DEFAULT_CHAT_TEMPLATE_FALLBACK.format(instruction=text)


def load_lvlm(path: str | os.PathLike[str], device: str = "auto", dtype: str = "auto") -> LoadedLvlm:
    folder = _require_folder(path, "LVLM")
    device = resolve_device(device)
    with CLOCK.loading():  # the manifest's timings.load_s (transformers' model classes import lazily: seconds)
        from transformers import AutoProcessor, LlavaForConditionalGeneration

        model = LlavaForConditionalGeneration.from_pretrained(
            folder, dtype=resolve_dtype(dtype, device), local_files_only=True
        ).to(device)
        model.eval()
        processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    return LoadedLvlm(model=model, processor=processor, device=device)


@dataclass
class LoadedClip:
    model: Any
    processor: Any
    device: str


def load_clip(path: str | os.PathLike[str], device: str = "auto") -> LoadedClip:
    folder = _require_folder(path, "CLIP")
    device = resolve_device(device)
    with CLOCK.loading():  # the manifest's timings.load_s (transformers' model classes import lazily: seconds)
        from transformers import CLIPModel, CLIPProcessor

        model = CLIPModel.from_pretrained(folder, local_files_only=True).to(device)
        model.eval()
        processor = CLIPProcessor.from_pretrained(folder, local_files_only=True)
    return LoadedClip(model=model, processor=processor, device=device)


def set_threads_from_env() -> None:
    """Respect CSR_TORCH_THREADS so that several CPU stand-in workers do not oversubscribe cores."""
    import torch

    threads = os.environ.get("CSR_TORCH_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
