"""``toyworld-build``: build (or find) the toy world in ``<out_root>/<hash>/``.

The hash covers the resolved world parameters, the seed and ``WORLD_VERSION``, so a folder with a
manifest is a finished build of exactly that world and a second build is a no-op. A build works in
a temporary sibling folder, writes the manifest there last, then renames it into place: a reader
never sees half a world.

Stages, each reporting progress: scenes, tokenizer, clip (training steps), lvlm (training steps),
benchmarks, measure. The last line on stdout is ``{"event": "toyworld", "path": "<folder>"}``.

Launched by the activity like any other step (spec with ``out_dir``), the step folder gets a ``world``
link to the world's folder and a manifest of its own that lists ``world/manifest.json``: the activity
reuses the step, without starting Python, while that world is intact, and the run reads the world's
folder through the link. Without ``out_dir`` (``csr toyworld build``, tests) the world's own manifest
is the step's.
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
    out_dir = spec.get("out_dir")
    if out_dir is not None and not (isinstance(out_dir, str) and os.path.isabs(out_dir)):
        raise SpecError("out_dir", out_dir, "an absolute path (the step folder that links to the world)")
    folder = out_root / cfg.world_hash()
    # Whether this run builds it: told before, since a concurrent build may finish first and then it is reused.
    building = not (folder / "manifest.json").is_file()
    world = _find_or_build(out_root, cfg)
    return world if out_dir is None else _link(Path(out_dir), spec, folder, world, building)


WORLD_LINK = "world"


def _link(out: Path, spec: dict[str, Any], folder: Path, world: dict[str, Any], built: bool) -> dict[str, Any]:
    """The step folder's record of the world: a ``world`` link to it and a manifest listing its manifest."""
    out.mkdir(parents=True, exist_ok=True)
    temporary = out / f".{WORLD_LINK}.{os.getpid()}"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(folder, target_is_directory=True)
    temporary.replace(out / WORLD_LINK)
    return write_manifest(out, step=STEP, spec=spec, files=[f"{WORLD_LINK}/manifest.json"],
                          items_total=world["items_total"], items_reused=0 if built else world["items_total"],
                          items_computed=world["items_total"] if built else 0,
                          stats={"built": int(built), "world_version": WORLD_VERSION})


def _find_or_build(out_root: Path, cfg: WorldConfig) -> dict[str, Any]:
    """The manifest of the world of ``cfg`` in ``out_root``, built first unless it is there."""
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
    from ..models import set_threads_from_env
    from . import tokenizer as tokenizers
    from .measure import measure_world
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

    scenes, pixels = _make_scenes(work, cfg, rng)
    lap("scenes")
    progress = Progress(step="tokenizer", total=2, unit="tokenizers")
    progress.start()
    lvlm_tokenizer = tokenizers.build("lvlm")
    progress.advance()
    clip_tokenizer = tokenizers.build("clip")
    progress.advance()
    lap("tokenizer")
    clip_losses = _train_clip(work, cfg, clip_tokenizer, scenes["sft"], pixels["sft"], rng["clip"])
    lap("clip")
    lvlm_losses = _train_lvlm(work, cfg, lvlm_tokenizer, scenes["sft"], pixels["sft"], rng)
    lap("lvlm")
    pope = _write_benchmarks(work, scenes, rng)
    lap("benchmarks")
    metrics = measure_world(work, scenes["heldout"], pope, rng["measure"])
    metrics["heldout_composition"]["drawn_lone_share"] = cfg.heldout_lone_share
    metrics["training"] = {"lvlm_final_loss": float(np.mean(lvlm_losses[-20:])),
                           "clip_final_loss": float(np.mean(clip_losses[-20:]))}
    lap("measure")
    metrics["timings_s"] = timings
    atomic_write_json(work / "metrics.json", metrics)
    atomic_write_json(work / "world.json", {"world_version": WORLD_VERSION, "hash": cfg.world_hash(), **cfg.to_dict()})
    atomic_write_text(work / "README.md", render_readme(cfg, metrics))
    return {"timings_s": timings, "images_sha256": sha256_tree(work / "images"),
            "metrics": {key: metrics[key] for key in ("heldout_lone", "heldout_all", "clip")}}


def _make_scenes(work: Path, cfg: WorldConfig,
                 rng: dict[str, np.random.Generator]) -> tuple[dict[str, list[dict[str, Any]]], dict[str, np.ndarray]]:
    """Draw, render and save every scene; ``scenes.jsonl`` holds their ground truth."""
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
    return scenes, pixels


def _train_clip(work: Path, cfg: WorldConfig, tokenizer: Any, sft: list[dict[str, Any]], pixels: np.ndarray,
                rng: np.random.Generator) -> list[float]:
    import torch

    from . import tiny_clip

    torch.manual_seed(cfg.seed)
    model, processor = tiny_clip.build(cfg, tokenizer)
    losses = tiny_clip.train(model, tokenizer, [record["objects"] for record in sft], torch.from_numpy(pixels),
                             steps=cfg.clip_steps, batch_size=cfg.clip_batch, lr=cfg.clip_lr, rng=rng)
    model.save_pretrained(work / "clip")
    processor.save_pretrained(work / "clip")
    return losses


def _train_lvlm(work: Path, cfg: WorldConfig, tokenizer: Any, sft: list[dict[str, Any]], pixels: np.ndarray,
                rng: dict[str, np.random.Generator]) -> list[float]:
    import torch

    from . import lvlm_arch, lvlm_train, sft_data

    torch.manual_seed(cfg.seed + 1)
    processor = lvlm_arch.build_processor(cfg, tokenizer)
    model = lvlm_arch.build_model(cfg, tokenizer)
    objects = [record["objects"] for record in sft]
    examples = sft_data.make_examples(objects, rng["sft_text"], cfg.caption_noise, cfg.synonym_prob)
    atomic_write_text(work / "sft.jsonl", "".join(
        json.dumps({"image": sft[e.image_index]["image"], "input": e.instruction, "output": e.response}) + "\n"
        for e in examples))
    data = sft_data.Tokenised(examples, processor, _prompt_text(processor), _pil(pixels[0]),
                              sft_data.cell_targets(objects, tokenizer, cfg.patch_size),
                              ground_questions=True, answer_weight=cfg.answer_weight)
    losses = lvlm_train.train(model, data, torch.from_numpy(pixels), steps=cfg.lvlm_steps, batch_size=cfg.lvlm_batch,
                              lr=cfg.lvlm_lr, rng=rng["lvlm"])
    model.save_pretrained(work / "lvlm")
    processor.save_pretrained(work / "lvlm")
    return losses


def _write_benchmarks(work: Path, scenes: dict[str, list[dict[str, Any]]],
                      rng: dict[str, np.random.Generator]) -> dict[str, list[dict[str, Any]]]:
    """The CSR prompt set and the two benchmarks; returns the POPE questions per split."""
    from . import benchmarks

    progress = Progress(step="benchmarks", total=3 + 2 * len(SPLITS), unit="files")
    progress.start()
    choice = rng["prompts"].integers(len(INSTRUCTION_INPUTS), size=len(scenes["prompt"]))
    atomic_write_json(work / "prompts.json", [
        {"id": record["image"].removesuffix(".png"), "image": record["image"], "input": INSTRUCTION_INPUTS[int(pick)]}
        for record, pick in zip(scenes["prompt"], choice)])
    progress.advance()
    sft_objects = [record["objects"] for record in scenes["sft"]]
    pope = benchmarks.write_pope(work / "benchmarks" / "pope", scenes["heldout"], work / "images", sft_objects,
                                 rng["benchmarks"])
    progress.advance()
    benchmarks.write_chair(work / "benchmarks" / "chair", scenes["heldout"], work / "images")
    progress.advance()
    for split, split_scenes in split_heldout(scenes["heldout"]).items():
        benchmarks.write_pope(work / "benchmarks" / f"pope_{split}", split_scenes, work / "images", sft_objects,
                              rng["benchmarks"])
        progress.advance()
        benchmarks.write_chair(work / "benchmarks" / f"chair_{split}", split_scenes, work / "images")
        progress.advance()
    return pope


SPLITS = ("dev", "test")


def split_heldout(heldout: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Dev (even-numbered held-out scenes: for choosing settings) and test (odd-numbered: reported only).

    Interleaving keeps both splits alike: the lone scenes come first in the held-out list, so each
    split starts with its half of them, and a benchmark ``limit`` takes lone scenes first in both.
    """
    return {"dev": heldout[0::2], "test": heldout[1::2]}


def _prompt_text(processor: Any) -> Any:
    from ..models import LoadedLvlm

    return LoadedLvlm(model=None, processor=processor, device="cpu").prompt_text


def _pil(array: np.ndarray) -> Any:
    from PIL import Image

    return Image.fromarray(array)


def _save_png(array: np.ndarray, path: Path) -> None:
    _pil(array).save(path, format="PNG")
