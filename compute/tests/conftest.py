"""Shared pytest fixtures. Tests never reach a model hub."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """A step run in-process sets torch's thread count from CSR_TORCH_THREADS and nothing sets it back;
    float sums then differ in the last digits between tests run before and after it, and the
    same-seed-same-bytes tests compare outputs of both. Each test leaves the count as it found it."""
    import torch

    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> SimpleNamespace:
    """A tiny random LLaVA and CLIP saved as model folders, 8 images and a prompts.json (built once per session)."""
    from csr_compute.fixtures.tiny_models import build_images_and_prompts, build_tiny_clip, build_tiny_lvlm

    root = tmp_path_factory.mktemp("tiny_models")
    images_dir, prompts_file = build_images_and_prompts(root / "data", count=8)
    return SimpleNamespace(
        root=root,
        lvlm=str(build_tiny_lvlm(root / "lvlm")),
        clip=str(build_tiny_clip(root / "clip")),
        images_dir=str(images_dir),
        prompts_file=str(prompts_file),
    )


@pytest.fixture
def compute_env() -> dict[str, str]:
    """Environment for a compute-step subprocess: offline, one thread (the CPU is shared)."""
    src = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "CSR_TORCH_THREADS": "1",
            "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


GENERATE_PARAMS = {"num_beams": 5, "num_token_beams": 5, "num_beam_groups": 5, "diversity_penalty": 3.0,
                   "max_new_tokens": 6, "max_length": 52, "keep_top": 1, "keep_bottom": 2,
                   "prune_by": "self_reward", "batch_size": 8, "prompts_in_flight": 4}


def run_pipeline(models: SimpleNamespace, root: Path, generate_params: dict | None = None) -> SimpleNamespace:
    """generate -> reward -> curate on the tiny models, in process; returns the step folders and manifests."""
    from csr_compute.steps import curate, generate, reward

    out = SimpleNamespace(root=root)
    out.generate_spec = {"out_dir": str(root / "generate"), "model": models.lvlm, "prompts_file": models.prompts_file,
                         "images_dir": models.images_dir, "shard": {"index": 0, "count": 1}, "seed": 0,
                         "device": "cpu", "params": {**GENERATE_PARAMS, **(generate_params or {})}}
    out.generate = generate.run(out.generate_spec)
    out.reward_spec = {"out_dir": str(root / "reward"), "trees": [str(root / "generate" / "trees.jsonl")],
                       "clip": models.clip, "images_dir": models.images_dir, "device": "cpu",
                       "params": {"calibration": "rank", "alpha": 0.9}}
    out.reward = reward.run(out.reward_spec)
    out.curate_spec = {"out_dir": str(root / "curate"), "scored": [str(root / "reward" / "scored.jsonl")],
                       "images_dir": models.images_dir, "params": {}}
    out.curate = curate.run(out.curate_spec)
    return out


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_models, tmp_path_factory) -> SimpleNamespace:
    """One generate -> reward -> curate run on the tiny models, shared by the step tests."""
    return run_pipeline(tiny_models, tmp_path_factory.mktemp("pipeline"))
