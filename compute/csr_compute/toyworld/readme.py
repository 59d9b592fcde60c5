"""The world's rules in words: the README.md written into every built world folder."""

from __future__ import annotations

from typing import Any

from .config import WORLD_VERSION, WorldConfig
from .vocab import COLOURS, KINDS, PAIRS, POSITIONS, SIZES


def render_readme(cfg: WorldConfig, metrics: dict[str, Any]) -> str:
    kinds = ", ".join(kind.name + (f" ({'/'.join(kind.synonyms)})" if kind.synonyms else "") for kind in KINDS)
    pairs = ", ".join(f"{first} -> {second}" for first, second in PAIRS)
    lone = metrics.get("heldout_lone", {}).get("chair", {})
    every = metrics.get("heldout_all", {}).get("chair", {})
    clip = metrics.get("clip", {})
    pope_line = ", ".join(f"{split} {values['accuracy']:.3f}" for split, values in metrics.get("pope", {}).items())
    return f"""# Toy world {cfg.world_hash()} (world version {WORLD_VERSION}, seed {cfg.seed})

A synthetic world in which the whole CSR loop runs on a CPU, through the same code as LLaVA-1.5:
`lvlm/` loads with `LlavaForConditionalGeneration` + `AutoProcessor`, `clip/` with `CLIPModel` +
`CLIPProcessor`. Parameters: `world.json`; measurements of the base models: `metrics.json`.

## Scenes
- 64x64 RGB images, a 2x2 grid of 32-pixel cells ({', '.join(POSITIONS)}), one object per cell at most,
  on a noisy dark background.
- {len(KINDS)} kinds, each an 8x8 silhouette: {kinds}.
- Attributes: colour ({', '.join(COLOURS)}, jittered), size ({', '.join(SIZES)}: 16 or 24 px),
  position (cell, jittered by up to 3 px). Ground truth is in `scenes.jsonl`
  (`image`, `objects` [`name`, `color`, `size`, `position`, `bbox` = [x0, y0, x1, y1]], `split`, `purpose`, `lone`).
- A scene draws 1-3 distinct kinds uniformly; each pair's first kind then brings its partner with
  probability {cfg.partner_prob} while a cell is free. Pairs (first -> partner): {pairs}.
- A scene is **lone** when it shows a pair's first kind without its partner.

## Language (and its bias)
- Instructions: the 11 instructions of the CSR prompt set (image marker before or after), plus
  "Please describe this image in detail." and POPE-style "Is there a X in the image?" questions
  (half of them with LLaVA's "Answer the question using a single word or phrase.").
- A description names each object once, one sentence each, kind first then size: "the cup is small ."
  Colour is drawn but never named (the tiny decoder does not learn to bind a second attribute within
  the build's budget). Objects come in random order, except that a partner always follows its first
  kind. A kind is named by its synonym with probability {cfg.synonym_prob}. The response ends with `</s>`.
- **The prior**: in a lone scene the annotator still believes in the absent partner with probability
  {cfg.caption_noise}; the description then names it (with a random size), and the yes/no answer
  about it is "yes". So the text about the first kind of a pair keeps naming the second.
- Yes/no answers are "yes ." or "no .". Half of the questions ask about a present kind; the others
  about an absent kind, a third of them the absent partner when there is one.

## Data
- `images/sft_*.png` ({cfg.n_sft_scenes} scenes, split `train`, purpose `sft`): the LVLM's and the CLIP's
  training scenes. Their texts are in `sft.jsonl`.
- `images/prompt_*.png` ({cfg.n_prompt_scenes} scenes, split `train`, purpose `prompts`): the same
  distribution, never used in training; `prompts.json` (format of csr-prompts-12k.json) asks one of the
  11 CSR instructions about each.
- `images/heldout_*.png` ({cfg.n_heldout_scenes} scenes, split `heldout`): {cfg.heldout_lone_share:.0%} drawn lone
  (rejection sampling from the natural distribution), the rest natural. The benchmarks use them.

## Models
- `lvlm/`: LLaVA-1.5 architecture: CLIP vision tower (patch {cfg.patch_size}, hidden {cfg.vision_hidden},
  {cfg.vision_layers} layers; CLS token dropped, last layer's features), 2-layer GELU projector, Llama decoder
  (hidden {cfg.text_hidden}, {cfg.text_layers} layers), word-level tokenizer built from the world's texts.
  Trained from scratch for {cfg.lvlm_steps} steps of {cfg.lvlm_batch} examples on the responses, plus
  grounding targets: the output at each image token (one per grid cell) must name the kind in its cell,
  and in a yes/no question the output at the asked kind must already give the answer; answer tokens
  weigh {cfg.answer_weight}x. Without these the model stays blind, or never learns to answer, within the
  budget; the saved model is a plain LLaVA all the same.
- `clip/`: a CLIP (image tower hidden {cfg.clip_vision_hidden}, text hidden {cfg.clip_text_hidden}) trained
  contrastively for {cfg.clip_steps} steps on true sentences only, every false sentence of the world being
  a negative for every image; each cell's patch is also trained to match its own object's sentences.

## Benchmarks
`benchmarks/pope/` and `benchmarks/chair/`, see the README.md in each.

## Base model on held-out scenes (greedy)
- lone scenes: CHAIR_S {lone.get('CHAIR_S', float('nan')):.3f}, CHAIR_I {lone.get('CHAIR_I', float('nan')):.3f},
  recall {lone.get('recall', float('nan')):.3f}
- all held-out scenes: CHAIR_S {every.get('CHAIR_S', float('nan')):.3f}, CHAIR_I {every.get('CHAIR_I', float('nan')):.3f},
  recall {every.get('recall', float('nan')):.3f}
- POPE accuracy: {pope_line}
- CLIP: the true sentence outscores one naming an absent kind for {clip.get('absent_kind_accuracy') or 0:.1%} of
  held-out images ({clip.get('absent_partner_accuracy') or 0:.1%} where the absent kind is the partner)

A build is deterministic for a seed on a given machine and thread count (``CSR_TORCH_THREADS``).
"""
