"""The toy world's parameters: one dataclass, validated once, hashed into the cache folder's name.

Every field changes what the build produces, so every field is part of the hash; ``WORLD_VERSION``
covers the code (bump it whenever the generator, the language or the training changes its output).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..contract import SpecError

WORLD_VERSION = 3


@dataclass(frozen=True)
class WorldConfig:
    seed: int = 0
    """Seeds every random draw of the build: scenes, text, initial weights, data order."""

    # --- scenes -------------------------------------------------------------------------------
    n_sft_scenes: int = 16000
    """Training-distribution scenes whose descriptions train the LVLM and the CLIP."""
    n_prompt_scenes: int = 4000
    """Fresh training-distribution scenes for the CSR prompt set (never seen in SFT)."""
    n_heldout_scenes: int = 1200
    """Held-out scenes of the benchmarks: even-numbered ones form the dev split, odd-numbered the test split.

    1,200 gives each split 300 lone scenes, where the standard error of toy CHAIR_I is about 1 point
    (measured by bootstrap over captions, docs/toy-results.md)."""
    heldout_lone_share: float = 0.5
    """Share of held-out scenes drawn "lone" (a pair's first kind without its partner), where the prior bites."""
    partner_prob: float = 0.85
    """Probability that a scene showing a pair's first kind also shows its partner (if a cell is free)."""

    # --- language -----------------------------------------------------------------------------
    caption_noise: float = 0.6
    """In a lone scene, probability that the training text still names the absent partner."""
    synonym_prob: float = 0.15
    """Probability that a sentence names a kind by its synonym (for kinds that have one)."""

    # --- tiny LVLM ----------------------------------------------------------------------------
    patch_size: int = 32
    """Pixels per patch side; 32 makes one image token per grid cell (4 tokens: short prompts, fast search)."""
    vision_hidden: int = 64
    vision_layers: int = 2
    text_hidden: int = 128
    text_layers: int = 3
    lvlm_steps: int = 1200
    lvlm_batch: int = 64
    lvlm_lr: float = 2e-3
    answer_weight: float = 5.0
    """Loss weight of a yes/no answer token (and of its twin target at the asked kind) against other tokens."""

    # --- tiny CLIP ----------------------------------------------------------------------------
    clip_vision_hidden: int = 128
    """Width of the CLIP's image tower, which must sum up to four objects in one embedding."""
    clip_text_hidden: int = 64
    clip_steps: int = 1000
    clip_batch: int = 128
    clip_lr: float = 2e-3

    def __post_init__(self) -> None:
        for spec_field in fields(self):
            value = getattr(self, spec_field.name)
            if spec_field.type == "int" and (isinstance(value, bool) or not isinstance(value, int)):
                raise SpecError(spec_field.name, value, "an integer")
            if spec_field.type == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise SpecError(spec_field.name, value, "a number")
        positive = ["n_sft_scenes", "n_prompt_scenes", "n_heldout_scenes", "vision_hidden", "vision_layers",
                    "text_hidden", "text_layers", "lvlm_steps", "lvlm_batch", "clip_vision_hidden", "clip_text_hidden", "clip_steps",
                    "clip_batch"]
        for name in positive:
            if getattr(self, name) < 1:
                raise SpecError(name, getattr(self, name), "an integer >= 1")
        for name in ["heldout_lone_share", "partner_prob", "caption_noise", "synonym_prob"]:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SpecError(name, getattr(self, name), "a probability in [0, 1]")
        if not 0.0 < self.answer_weight <= 100.0:
            raise SpecError("answer_weight", self.answer_weight, "a loss weight in (0, 100]")
        for name in ["lvlm_lr", "clip_lr"]:
            if not 0.0 < getattr(self, name) < 1.0:
                raise SpecError(name, getattr(self, name), "a learning rate in (0, 1)")
        if self.patch_size not in (8, 16, 32):
            raise SpecError("patch_size", self.patch_size, "8, 16 or 32 (a divisor of the 64-pixel image and its cells)")
        for name in ["vision_hidden", "text_hidden", "clip_vision_hidden", "clip_text_hidden"]:
            if getattr(self, name) % 4:
                raise SpecError(name, getattr(self, name), "a multiple of 4 (4 attention heads)")

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "WorldConfig":
        """The world parameters of a build spec; ``out_root`` and unknown keys are told apart."""
        known = {spec_field.name for spec_field in fields(cls)}
        # out_dir is where the launching activity keeps the spec and logs; the world goes under out_root.
        params = {key: value for key, value in spec.items() if key not in ("out_root", "out_dir")}
        unknown = sorted(set(params) - known)
        if unknown:
            raise SpecError(unknown[0], params[unknown[0]], f"a toy-world parameter, one of: {', '.join(sorted(known))}")
        return cls(**params)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def world_hash(self) -> str:
        payload = json.dumps({"world_version": WORLD_VERSION, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]
