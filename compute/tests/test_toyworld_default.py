"""The default toy world (seed 0): what its models learnt, checked through the steps' own loaders.

The world is built once into ``$CSR_HOME/toyworld`` (default ``<repo>/.csr/toyworld``, as ``src/env.ts``)
and reused from there; the first run on a machine pays the build (minutes on two CPU cores).
"""

import io
import json
import os
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from csr_compute.models import load_clip, load_lvlm
from csr_compute.toyworld.build import ensure_built
from csr_compute.toyworld.judge import judge_response, load_scenes
from csr_compute.toyworld.language import CHAIR_INSTRUCTION, sentence
from csr_compute.toyworld.measure import chair, generate
from csr_compute.toyworld.vocab import PARTNER

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    root = Path(os.environ.get("CSR_HOME") or REPO / ".csr") / "toyworld"
    with redirect_stdout(io.StringIO()):
        folder = ensure_built(root, seed=0)
    return {"folder": folder, "metrics": json.loads((folder / "metrics.json").read_text()),
            "scenes": load_scenes(folder / "scenes.jsonl")}


def test_base_model_sees_present_objects_and_hallucinates_like_llava(world):
    heldout = world["metrics"]["heldout_all"]["chair"]
    lone = world["metrics"]["heldout_lone"]["chair"]
    assert heldout["recall"] >= 0.9, heldout
    assert heldout["CHAIR_S"] >= 0.40 and heldout["CHAIR_I"] >= 0.15, heldout
    # The prior bites where it should: lone scenes hallucinate far more than the held-out set at large.
    assert lone["CHAIR_I"] > heldout["CHAIR_I"]


def test_pope_adversarial_is_clearly_harder_than_random(world):
    # LLaVA-1.5-7B on COCO POPE: random 87.3, adversarial 84.2, a gap of 3.1 points.
    pope = world["metrics"]["pope"]
    assert pope["adversarial"]["accuracy"] <= pope["random"]["accuracy"] - 0.03, pope
    assert pope["random"]["accuracy"] >= 0.85, "the model must answer from the image, not guess"


def test_clip_ranks_true_sentences_above_hallucinated_ones(world):
    assert world["metrics"]["clip"]["absent_kind_accuracy"] >= 0.95, world["metrics"]["clip"]


def test_greedy_captions_regenerate_identically_through_load_lvlm(world):
    folder = world["folder"]
    recorded = [json.loads(line) for line in (folder / "base_captions.jsonl").read_text().splitlines()][:40]
    lvlm = load_lvlm(folder / "lvlm", device="cpu")
    images = [Image.open(folder / "images" / r["image"]).convert("RGB") for r in recorded]
    captions = generate(lvlm, images, [CHAIR_INSTRUCTION] * len(images), max_new_tokens=64)
    assert captions == [r["caption"] for r in recorded]
    for text in captions:
        assert text.endswith(" ."), f"a description must end with a whole sentence, got {text!r}"


def test_generation_stops_with_eos_and_names_the_shown_objects(world):
    folder = world["folder"]
    lvlm = load_lvlm(folder / "lvlm", device="cpu")
    names = [f"heldout_{index:05d}.png" for index in range(0, 500, 50)]
    inputs = lvlm.processor(images=[Image.open(folder / "images" / name) for name in names],
                            text=[lvlm.prompt_text("<image>\nDescribe the following image.")] * len(names),
                            padding=True, return_tensors="pt")
    output = lvlm.model.generate(**inputs, max_new_tokens=64, do_sample=False)
    missed = present = 0
    for name, row in zip(names, output[:, inputs["input_ids"].shape[1]:]):
        ended = (row == lvlm.tokenizer.eos_token_id).nonzero()
        assert len(ended) > 0, f"no </s> in the answer for {name}"
        text = lvlm.tokenizer.decode(row[:int(ended[0]) + 1], skip_special_tokens=True)
        result = judge_response(world["scenes"][name], text)
        missed += len(result.missed)
        present += len(world["scenes"][name]["objects"])
    assert missed / present <= 0.15, f"missed {missed} of {present} shown objects"


def test_clip_prefers_the_true_sentence_to_the_absent_partner_in_lone_scenes(world):
    clip = load_clip(world["folder"] / "clip", device="cpu")
    wins = []
    lone = [s for s in world["scenes"].values() if s["split"] == "heldout" and s["lone"]][:60]
    for scene in lone:
        names = {obj["name"] for obj in scene["objects"]}
        first = next(obj for obj in scene["objects"] if obj["name"] in PARTNER and PARTNER[obj["name"]] not in names)
        texts = [sentence(first["name"], first["size"]), sentence(PARTNER[first["name"]], first["size"])]
        image = Image.open(world["folder"] / "images" / scene["image"]).convert("RGB")
        inputs = clip.processor(text=texts, images=[image], padding=True, return_tensors="pt")
        with torch.no_grad():
            logits = clip.model(**inputs).logits_per_image[0]
        wins.append(bool(logits[0] > logits[1]))
    assert np.mean(wins) >= 0.9, f"true sentence won {np.mean(wins):.2f} of {len(wins)} lone scenes"


def test_official_chair_scorer_agrees_with_the_build_metrics(world):
    from csr_compute.evaluation.scorers.chair import Vocabulary, chair_metrics

    folder = world["folder"]
    vocabulary = Vocabulary.from_file(folder / "benchmarks" / "chair" / "synonyms.txt")
    recorded = [json.loads(line) for line in (folder / "base_captions.jsonl").read_text().splitlines()]
    scenes = [world["scenes"][r["image"]] for r in recorded]
    official = chair_metrics(vocabulary, (({obj["name"] for obj in s["objects"]}, r["caption"])
                                          for s, r in zip(scenes, recorded)))
    ours = chair(scenes, [r["caption"] for r in recorded])
    for name in ("CHAIR_S", "CHAIR_I", "recall"):
        assert official[name] == pytest.approx(100 * ours[name]), name
    assert ours == pytest.approx(world["metrics"]["heldout_all"]["chair"])
