"""``toyworld-build``: build (or find) the toy world in ``<out_root>/<hash>/``.

The hash covers the resolved world parameters, the seed and ``WORLD_VERSION``, so a folder with a
manifest is a finished build of exactly that world and a second build is a no-op. A build works in
a temporary sibling folder, writes the manifest there last, then renames it into place: a reader
never sees half a world.

Stages, each reporting progress: scenes, tokenizer, clip (training steps), lvlm (training steps),
benchmarks, measure. The last line on stdout is ``{"event": "toyworld", "path": "<folder>"}``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..contract import (Progress, SpecError, atomic_write_json, atomic_write_text, emit, log, require, sha256_tree,
                        write_manifest)
from .config import WORLD_VERSION, WorldConfig
from .language import INSTRUCTION_INPUTS
from .scenes import lone_kinds, render, sample_lone_objects, sample_objects

STEP = "toyworld-build"
# Independent random streams, so that changing one stage's size never reshuffles another's draws.
STREAMS = ("sft_scenes", "prompt_scenes", "heldout_scenes", "sft_text", "prompts", "clip", "lvlm", "benchmarks",
           "measure")


def world_dir(out_root: str | os.PathLike[str], seed: int = 0, **overrides: Any) -> Path:
    """The folder the world of these parameters lives in (built or not)."""
    return Path(out_root) / WorldConfig(seed=seed, **overrides).world_hash()


def ensure_built(out_root: str | os.PathLike[str], seed: int = 0, **overrides: Any) -> Path:
    """Build the world unless it is already there; its folder either way."""
    run({"out_root": str(out_root), "seed": seed, **overrides})
    return world_dir(out_root, seed, **overrides)


def run(spec: dict[str, Any]) -> dict[str, Any]:
    out_root = Path(require(spec, "out_root", str, "the toy-world cache folder, e.g. <CSR_HOME>/toyworld"))
    cfg = WorldConfig.from_spec(spec)
    folder = out_root / cfg.world_hash()
    manifest_path = folder / "manifest.json"
    if manifest_path.is_file():
        return _reuse(folder)
    if folder.exists():
        raise SpecError("out_root", str(out_root),
                        f"a cache folder whose {folder.name}/ is complete or absent; it exists without a manifest "
                        f"(not written by this build): remove {folder} and build again")
    out_root.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_builds(out_root, folder.name)
    work = out_root / f".{folder.name}.building-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        started = time.monotonic()
        stats = _build(work, cfg)
        stats["build_seconds"] = round(time.monotonic() - started, 1)
        files = [str(path.relative_to(work)) for path in sorted(work.rglob("*"))
                 if path.is_file() and "images" not in path.relative_to(work).parts]
        manifest = write_manifest(work, step=STEP, spec={"world_version": WORLD_VERSION, **cfg.to_dict()},
                                  files=files, items_total=len(files), items_reused=0, items_computed=len(files),
                                  stats=stats)
        try:
            work.rename(folder)
        except OSError:
            # Another build of the same world finished first; its folder is as good as ours.
            if not manifest_path.is_file():
                raise
            shutil.rmtree(work, ignore_errors=True)
            return _reuse(folder)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    emit("toyworld", path=str(folder))
    return manifest


def _remove_abandoned_builds(out_root: Path, name: str) -> None:
    """Delete temporary folders of builds whose process is gone (killed mid-build); live ones are left alone."""
    for stale in out_root.glob(f".{name}.building-*"):
        try:
            os.kill(int(stale.name.rsplit("-", 1)[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(stale, ignore_errors=True)
        except (ValueError, PermissionError):
            continue


def _reuse(folder: Path) -> dict[str, Any]:
    manifest = json.loads((folder / "manifest.json").read_text())
    emit("manifest", path=str(folder / "manifest.json"), items_total=manifest["items_total"],
         items_reused=manifest["items_total"], items_computed=0)
    emit("toyworld", path=str(folder))
    return manifest


def _build(work: Path, cfg: WorldConfig) -> dict[str, Any]:
    import torch

    from ..models import load_clip, load_lvlm, set_threads_from_env
    from . import benchmarks, lvlm_arch, lvlm_train, measure, sft_data, tiny_clip
    from . import tokenizer as tokenizers
    from .readme import render_readme

    set_threads_from_env()
    streams = dict(zip(STREAMS, np.random.SeedSequence(cfg.seed).spawn(len(STREAMS))))
    rng = {name: np.random.default_rng(seq) for name, seq in streams.items()}
    timings: dict[str, float] = {}
    clock = time.monotonic()

    def lap(stage: str) -> None:
        nonlocal clock
        timings[stage] = round(time.monotonic() - clock, 1)
        clock = time.monotonic()
        log(f"toyworld: {stage} done in {timings[stage]} s")

    # --- scenes -------------------------------------------------------------------------------
    groups = [("sft", "train", cfg.n_sft_scenes, rng["sft_scenes"], False),
              ("prompt", "train", cfg.n_prompt_scenes, rng["prompt_scenes"], False),
              ("heldout", "heldout", cfg.n_heldout_scenes, rng["heldout_scenes"], True)]
    progress = Progress(step="scenes", total=sum(group[2] for group in groups), unit="scenes")
    progress.start()
    scenes: dict[str, list[dict[str, Any]]] = {}
    pixels: dict[str, np.ndarray] = {}
    (work / "images").mkdir(parents=True)
    for purpose, split, count, stream, lone_heavy in groups:
        records, arrays = [], []
        lone_target = round(count * cfg.heldout_lone_share) if lone_heavy else 0
        for index in range(count):
            objects = (sample_lone_objects(stream, cfg.partner_prob) if index < lone_target
                       else sample_objects(stream, cfg.partner_prob))
            image, boxes = render(objects, stream)
            for obj, box in zip(objects, boxes):
                obj["bbox"] = box
            name = f"{purpose}_{index:05d}.png"
            _save_png(image, work / "images" / name)
            records.append({"image": name, "objects": objects, "split": split, "purpose": purpose,
                            "lone": bool(lone_kinds(objects))})
            arrays.append(image)
            progress.advance()
        scenes[purpose], pixels[purpose] = records, np.stack(arrays)
    atomic_write_text(work / "scenes.jsonl", "".join(json.dumps(record) + "\n"
                                                     for group in scenes.values() for record in group))
    lap("scenes")

    # --- tokenizer ------------------------------------------------------------------------------
    progress = Progress(step="tokenizer", total=2, unit="tokenizers")
    progress.start()
    lvlm_tokenizer = tokenizers.build("lvlm")
    progress.advance()
    clip_tokenizer = tokenizers.build("clip")
    progress.advance()
    lap("tokenizer")

    sft_objects = [record["objects"] for record in scenes["sft"]]
    sft_images = torch.from_numpy(pixels["sft"])

    # --- CLIP -----------------------------------------------------------------------------------
    torch.manual_seed(cfg.seed)
    clip_model, clip_processor = tiny_clip.build(cfg, clip_tokenizer)
    clip_losses = tiny_clip.train(clip_model, clip_tokenizer, sft_objects, sft_images, steps=cfg.clip_steps,
                                  batch_size=cfg.clip_batch, lr=cfg.clip_lr, rng=rng["clip"])
    clip_model.save_pretrained(work / "clip")
    clip_processor.save_pretrained(work / "clip")
    lap("clip")

    # --- LVLM -----------------------------------------------------------------------------------
    torch.manual_seed(cfg.seed + 1)
    processor = lvlm_arch.build_processor(cfg, lvlm_tokenizer)
    model = lvlm_arch.build_model(cfg, lvlm_tokenizer)
    examples = sft_data.make_examples(sft_objects, rng["sft_text"], cfg.caption_noise, cfg.synonym_prob)
    atomic_write_text(work / "sft.jsonl", "".join(
        json.dumps({"image": scenes["sft"][e.image_index]["image"], "input": e.instruction, "output": e.response}) + "\n"
        for e in examples))
    prompt_text = _prompt_text(processor)
    grounding = sft_data.cell_targets(sft_objects, lvlm_tokenizer, cfg.patch_size)
    data = sft_data.Tokenised(examples, processor, prompt_text, _pil(pixels["sft"][0]), grounding,
                              ground_questions=True, answer_weight=cfg.answer_weight)
    lvlm_losses = lvlm_train.train(model, data, sft_images, steps=cfg.lvlm_steps, batch_size=cfg.lvlm_batch,
                                   lr=cfg.lvlm_lr, rng=rng["lvlm"])
    model.save_pretrained(work / "lvlm")
    processor.save_pretrained(work / "lvlm")
    lap("lvlm")

    # --- benchmarks and the prompt set ------------------------------------------------------------
    progress = Progress(step="benchmarks", total=3, unit="files")
    progress.start()
    prompt_choice = rng["prompts"].integers(len(INSTRUCTION_INPUTS), size=len(scenes["prompt"]))
    atomic_write_json(work / "prompts.json", [
        {"id": record["image"].removesuffix(".png"), "image": record["image"], "input": INSTRUCTION_INPUTS[int(choice)]}
        for record, choice in zip(scenes["prompt"], prompt_choice)])
    progress.advance()
    pope = benchmarks.write_pope(work / "benchmarks" / "pope", scenes["heldout"], work / "images", sft_objects,
                                 rng["benchmarks"])
    progress.advance()
    benchmarks.write_chair(work / "benchmarks" / "chair", scenes["heldout"], work / "images")
    progress.advance()
    lap("benchmarks")

    # --- measurements, through the saved folders and the steps' loaders ---------------------------
    metrics = _measure(work, cfg, scenes["heldout"], pope, rng["measure"], load_lvlm, load_clip, measure)
    metrics["training"] = {"lvlm_final_loss": float(np.mean(lvlm_losses[-20:])),
                           "clip_final_loss": float(np.mean(clip_losses[-20:]))}
    lap("measure")
    metrics["timings_s"] = timings
    atomic_write_json(work / "metrics.json", metrics)
    atomic_write_json(work / "world.json", {"world_version": WORLD_VERSION, "hash": cfg.world_hash(), **cfg.to_dict()})
    atomic_write_text(work / "README.md", render_readme(cfg, metrics))
    return {"timings_s": timings, "images_sha256": sha256_tree(work / "images"),
            "metrics": {key: metrics[key] for key in ("heldout_lone", "heldout_all", "clip")}}


def _measure(work: Path, cfg: WorldConfig, heldout: list[dict[str, Any]], pope: dict[str, list[dict[str, Any]]],
             rng: np.random.Generator, load_lvlm: Any, load_clip: Any, measure: Any) -> dict[str, Any]:
    from PIL import Image

    from .language import CHAIR_INSTRUCTION

    lvlm = load_lvlm(work / "lvlm", device="cpu")
    clip = load_clip(work / "clip", device="cpu")
    images = {record["image"]: Image.open(work / "images" / record["image"]).convert("RGB") for record in heldout}
    progress = Progress(step="measure", total=2 + len(pope), unit="measurements")
    progress.start()
    captions = measure.generate(lvlm, [images[r["image"]] for r in heldout], [CHAIR_INSTRUCTION] * len(heldout),
                                max_new_tokens=64)
    atomic_write_text(work / "base_captions.jsonl", "".join(
        json.dumps({"image": r["image"], "caption": c}) + "\n" for r, c in zip(heldout, captions)))
    lone = [i for i, record in enumerate(heldout) if record["lone"]]
    metrics: dict[str, Any] = {
        "heldout_all": {"chair": measure.chair(heldout, captions)},
        "heldout_lone": {"chair": measure.chair([heldout[i] for i in lone], [captions[i] for i in lone])},
        "heldout_composition": {"scenes": len(heldout), "lone": len(lone),
                                "drawn_lone_share": cfg.heldout_lone_share},
    }
    progress.advance()
    metrics["pope"] = {}
    for split, questions in pope.items():
        metrics["pope"][split] = measure.pope(lvlm, questions, images)
        progress.advance()
    metrics["clip"] = measure.clip_ranking(clip, heldout, [images[r["image"]] for r in heldout], rng)
    progress.advance()
    return metrics


def _prompt_text(processor: Any) -> Any:
    from ..models import LoadedLvlm

    return LoadedLvlm(model=None, processor=processor, device="cpu").prompt_text


def _pil(array: np.ndarray) -> Any:
    from PIL import Image

    return Image.fromarray(array)


def _save_png(array: np.ndarray, path: Path) -> None:
    _pil(array).save(path, format="PNG")
