"""The toyworld-build step on a test-size world: cache, folder layout, benchmark formats, loaders, determinism.

The world here is tiny and barely trained (it builds in seconds), so these tests check formats and
plumbing; ``test_toyworld_default.py`` checks what the default world's models have learnt.
"""

import io
import json
import re
import subprocess
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from csr_compute.__main__ import main
from csr_compute.contract import EXIT_CODES, SpecError, sha256_file
from csr_compute.models import load_clip, load_lvlm
from csr_compute.toyworld.build import ensure_built, run, world_dir
from csr_compute.toyworld.judge import load_scenes
from csr_compute.toyworld.language import INSTRUCTION_INPUTS
from csr_compute.toyworld.vocab import KIND_NAMES, KINDS, PARTNER

TINY = {"n_sft_scenes": 160, "n_prompt_scenes": 24, "n_heldout_scenes": 20, "lvlm_steps": 4, "lvlm_batch": 8,
        "clip_steps": 4, "clip_batch": 16}
POPE_LINE = re.compile(r"^Is there a ([a-z]+) in the image\?$")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("toyworld")
    with redirect_stdout(io.StringIO()) as out:
        folder = ensure_built(root, seed=0, **TINY)
    return {"root": root, "folder": folder, "stdout": out.getvalue()}


def _events(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_build_reports_every_stage_and_ends_with_the_folder(world):
    events = _events(world["stdout"])
    stages = {event["step"] for event in events if event["event"] == "progress"}
    assert {"scenes", "tokenizer", "clip", "lvlm", "benchmarks", "measure"} <= stages
    assert events[-1] == {"event": "toyworld", "path": str(world["folder"])}
    assert world["folder"] == world_dir(world["root"], seed=0, **TINY)


def test_folder_layout_and_manifest_hashes(world):
    folder = world["folder"]
    for name in ["lvlm/config.json", "clip/config.json", "scenes.jsonl", "prompts.json", "sft.jsonl", "metrics.json",
                 "world.json", "README.md", "benchmarks/pope/README.md", "benchmarks/chair/README.md"]:
        assert (folder / name).is_file(), f"{name} missing"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["step"] == "toyworld-build"
    assert "lvlm/model.safetensors" in manifest["files"]
    for name, entry in manifest["files"].items():
        assert sha256_file(folder / name) == entry["sha256"], f"{name} changed after the manifest"
    world_json = json.loads((folder / "world.json").read_text())
    assert world_json["hash"] == folder.name and world_json["n_sft_scenes"] == TINY["n_sft_scenes"]
    assert not [p for p in world["root"].iterdir() if p.name.startswith(".")], "a temporary build folder was left"


def test_second_build_is_a_noop_that_re_emits_the_manifest(world):
    folder = world["folder"]
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    with redirect_stdout(io.StringIO()) as out:
        manifest = run({"out_root": str(world["root"]), "seed": 0, **TINY})
    events = _events(out.getvalue())
    assert [event["event"] for event in events] == ["manifest", "toyworld"]
    assert events[0]["items_computed"] == 0
    assert manifest == json.loads((folder / "manifest.json").read_text())
    assert before == {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_launched_with_an_out_dir_the_step_folder_links_the_world_and_has_its_own_manifest(world, tmp_path):
    out = tmp_path / "run" / "toyworld"
    spec = {"out_dir": str(out), "out_root": str(world["root"]), "seed": 0, **TINY}
    out.mkdir(parents=True)
    (out / "spec.json").write_text(json.dumps(spec, indent=2) + "\n")  # as the activity writes it
    with redirect_stdout(io.StringIO()):
        manifest = run(spec)
    assert (out / "world").resolve() == world["folder"].resolve()
    assert manifest == json.loads((out / "manifest.json").read_text())
    assert list(manifest["files"]) == ["world/manifest.json"]
    assert manifest["files"]["world/manifest.json"]["sha256"] == sha256_file(world["folder"] / "manifest.json")
    assert manifest["spec_file_sha256"] == sha256_file(out / "spec.json"), "the activity's reuse check needs it"
    assert manifest["stats"]["built"] == 0 and manifest["items_computed"] == 0


def test_world_dir_is_keyed_by_seed_and_every_parameter(tmp_path):
    base = world_dir(tmp_path, seed=0)
    assert base == world_dir(tmp_path)
    assert base.parent == tmp_path and len(base.name) == 12
    assert world_dir(tmp_path, seed=1) != base
    assert world_dir(tmp_path, caption_noise=0.5) != base
    assert world_dir(tmp_path, lvlm_steps=1) != base


@pytest.mark.parametrize(("spec", "field", "expected"), [
    ({"seed": 0}, "out_root", "cache folder"),
    ({"out_root": "x", "colour_count": 3}, "colour_count", "a toy-world parameter"),
    ({"out_root": "x", "caption_noise": 1.5}, "caption_noise", "a probability"),
    ({"out_root": "x", "seed": "zero"}, "seed", "an integer"),
    ({"out_root": "x", "patch_size": 12}, "patch_size", "8, 16 or 32"),
    ({"out_root": "x", "out_dir": "relative"}, "out_dir", "an absolute path"),
])
def test_bad_spec_names_the_field_value_and_expectation(spec, field, expected):
    with pytest.raises(SpecError) as error:
        run(spec)
    assert error.value.field_path == field and expected in str(error.value)


def test_cli_maps_a_bad_spec_to_the_bad_spec_exit_code(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"out_root": str(tmp_path), "caption_noise": -1}))
    with redirect_stdout(io.StringIO()) as out:
        code = main(["toyworld-build", "--spec", str(spec)])
    assert code == EXIT_CODES["bad_spec"]
    assert "caption_noise" in _events(out.getvalue())[-1]["message"]


def test_scenes_prompts_and_sft_texts_are_consistent(world):
    folder = world["folder"]
    scenes = load_scenes(folder / "scenes.jsonl")
    purposes = [scene["purpose"] for scene in scenes.values()]
    assert purposes.count("sft") == 160 and purposes.count("prompt") == 24 and purposes.count("heldout") == 20
    for name, scene in scenes.items():
        assert (folder / "images" / name).is_file()
        assert scene["split"] == ("heldout" if scene["purpose"] == "heldout" else "train")
        names = {obj["name"] for obj in scene["objects"]}
        assert scene["lone"] == any(n in PARTNER and PARTNER[n] not in names for n in names)
        assert {"name", "color", "size", "position", "bbox"} <= set(scene["objects"][0])
    heldout = [scene for scene in scenes.values() if scene["split"] == "heldout"]
    assert sum(scene["lone"] for scene in heldout) >= 10, "half of the held-out scenes are drawn lone"

    prompts = json.loads((folder / "prompts.json").read_text())
    assert len(prompts) == 24 and len({p["id"] for p in prompts}) == 24
    for prompt in prompts:
        assert set(prompt) == {"id", "image", "input"} and prompt["input"] in INSTRUCTION_INPUTS
        assert scenes[prompt["image"]]["purpose"] == "prompt", "prompt images must be unseen in training"
    sft_images = {record["image"] for record in _jsonl(folder / "sft.jsonl")}
    assert sft_images == {name for name, scene in scenes.items() if scene["purpose"] == "sft"}


def test_pope_files_are_official_format_and_true_to_the_scenes(world):
    folder = world["folder"] / "benchmarks" / "pope"
    scenes = load_scenes(world["folder"] / "scenes.jsonl")
    for split in ("random", "popular", "adversarial"):
        questions = _jsonl(folder / f"coco_pope_{split}.json")
        assert [q["question_id"] for q in questions] == list(range(1, len(questions) + 1))
        labels = [q["label"] for q in questions]
        assert labels.count("yes") == labels.count("no"), f"{split}: POPE is balanced"
        for q in questions:
            assert set(q) == {"question_id", "image", "text", "label"}
            kind = POPE_LINE.match(q["text"]).group(1)
            present = {obj["name"] for obj in scenes[q["image"]]["objects"]}
            assert q["label"] == ("yes" if kind in present else "no"), q
            assert (folder / "images" / q["image"]).is_file()
            assert scenes[q["image"]]["split"] == "heldout"
    adversarial = _jsonl(folder / "coco_pope_adversarial.json")
    for image, scene in scenes.items():
        names = {obj["name"] for obj in scene["objects"]}
        partners = {PARTNER[n] for n in names if n in PARTNER and PARTNER[n] not in names}
        if scene["split"] == "heldout" and partners:
            asked = {POPE_LINE.match(q["text"]).group(1) for q in adversarial if q["image"] == image and q["label"] == "no"}
            assert asked & partners, f"adversarial split skips the absent partner of {image}"


def test_chair_files_follow_coco_and_the_chair_synonym_format(world):
    folder = world["folder"] / "benchmarks" / "chair"
    scenes = load_scenes(world["folder"] / "scenes.jsonl")
    instances = json.loads((folder / "instances.json").read_text())
    categories = {c["id"]: c["name"] for c in instances["categories"]}
    assert sorted(categories.values()) == sorted(KIND_NAMES)
    files = {image["id"]: image["file_name"] for image in instances["images"]}
    assert len(files) == 20
    annotated = {}
    for annotation in instances["annotations"]:
        annotated.setdefault(files[annotation["image_id"]], set()).add(categories[annotation["category_id"]])
    for file_name in files.values():
        assert annotated[file_name] == {obj["name"] for obj in scenes[file_name]["objects"]}
        assert (folder / "images" / file_name).is_file()
    # chair.py's own parse: line.strip().split(', '), first entry = the class.
    lines = [line.strip().split(", ") for line in (folder / "synonyms.txt").read_text().splitlines()]
    assert {words[0]: tuple(words[1:]) for words in lines} == {kind.name: kind.synonyms for kind in KINDS}
    questions = _jsonl(folder / "questions.jsonl")
    assert {q["question_id"]: q["image"] for q in questions} == files
    assert all(set(q) == {"question_id", "image", "text"} for q in questions)


def test_saved_folders_load_through_the_steps_loaders_and_generate(world):
    folder = world["folder"]
    lvlm = load_lvlm(folder / "lvlm", device="cpu")
    prompt = lvlm.prompt_text("<image>\nDescribe the following image.")
    assert prompt == "USER: <image>\nDescribe the following image. ASSISTANT:"
    image = Image.open(folder / "images" / "heldout_00000.png")
    inputs = lvlm.processor(images=[image, image], text=[prompt, lvlm.prompt_text("What's happening in the scene?")],
                            padding=True, return_tensors="pt")
    image_token = lvlm.model.config.image_token_id
    vision = lvlm.model.config.vision_config
    patches = (vision.image_size // vision.patch_size) ** 2
    assert ((inputs["input_ids"] == image_token).sum(dim=1) == patches).all(), "one <image> token per patch"
    output = lvlm.model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert output.shape[0] == 2 and output.shape[1] > inputs["input_ids"].shape[1]
    assert lvlm.tokenizer.padding_side == "left"

    clip = load_clip(folder / "clip", device="cpu")
    clip_inputs = clip.processor(text=["the cup is small .", "the dish is big ."], images=[image],
                                 padding=True, return_tensors="pt")
    logits = clip.model(**clip_inputs).logits_per_image
    assert logits.shape == (1, 2) and torch.isfinite(logits).all()


def test_two_builds_with_the_same_seed_are_identical_and_clear_abandoned_ones(world, tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    abandoned = tmp_path / f".{world['folder'].name}.building-{dead.pid}"
    (abandoned / "images").mkdir(parents=True)
    with redirect_stdout(io.StringIO()):
        again = ensure_built(tmp_path, seed=0, **TINY)
    assert not abandoned.exists(), "a dead build's temporary folder was left behind"
    first = json.loads((world["folder"] / "manifest.json").read_text())
    second = json.loads((again / "manifest.json").read_text())
    for name in ["scenes.jsonl", "sft.jsonl", "prompts.json", "lvlm/model.safetensors", "clip/model.safetensors",
                 "base_captions.jsonl", "benchmarks/pope/coco_pope_adversarial.json"]:
        assert first["files"][name] == second["files"][name], f"{name} differs between two builds"
    metrics = [json.loads((f / "metrics.json").read_text()) for f in (world["folder"], again)]
    for m in metrics:
        m.pop("timings_s")
    assert metrics[0] == metrics[1]
    assert np.array_equal(np.asarray(Image.open(world["folder"] / "images" / "sft_00003.png")),
                          np.asarray(Image.open(again / "images" / "sft_00003.png")))
