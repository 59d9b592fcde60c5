"""One CSR iteration on the tiny random LLaVA (generate -> reward -> curate -> dpo -> merge), with its figures.

    python compute/benchmarks/tiny_iteration.py [--prompts 8] [--out figures.json]

Prints the curate statistics and the DPO loss / implicit reward margin / accuracy on the training pairs
before and after training (the settings of the step tests).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from csr_compute.fixtures.tiny_models import build_images_and_prompts, build_tiny_clip, build_tiny_lvlm
from csr_compute.steps import curate, dpo, generate, merge, reward

GENERATE = {"num_beams": 5, "num_token_beams": 5, "num_beam_groups": 5, "diversity_penalty": 3.0,
            "max_new_tokens": 6, "max_length": 52, "keep_top": 1, "keep_bottom": 2, "prune_by": "self_reward",
            "batch_size": 8, "prompts_in_flight": 4}
DPO = {"beta": 0.1, "loss": "sigmoid", "learning_rate": 5e-3, "epochs": 4, "batch_size": 2, "lora_r": 8,
       "lora_alpha": 16, "lora_dropout": 0.0, "lr_scheduler": "constant", "warmup_ratio": 0.0,
       "checkpoint_every": 2, "eval_pairs": 8}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--out")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="csr-tiny-"))
    images, prompts = build_images_and_prompts(root / "data", count=args.prompts)
    lvlm, clip = str(build_tiny_lvlm(root / "lvlm")), str(build_tiny_clip(root / "clip"))
    generate.run({"out_dir": str(root / "generate"), "model": lvlm, "prompts_file": str(prompts),
                  "images_dir": str(images), "device": "cpu", "params": GENERATE})
    reward.run({"out_dir": str(root / "reward"), "trees": [str(root / "generate/trees.jsonl")], "clip": clip,
                "images_dir": str(images), "device": "cpu", "params": {"calibration": "rank", "alpha": 0.9}})
    curate.run({"out_dir": str(root / "curate"), "scored": [str(root / "reward/scored.jsonl")],
                "images_dir": str(images), "params": {}})
    dpo.run({"out_dir": str(root / "dpo"), "model": lvlm, "device": "cpu",
             "pairs": [str(root / "curate/pairs.jsonl")], "params": DPO})
    merge.run({"out_dir": str(root / "merge"), "model": lvlm, "adapter": str(root / "dpo/adapter"), "device": "cpu"})
    figures = {"folder": str(root), "curate": json.loads((root / "curate/stats.json").read_text()),
               "dpo": json.loads((root / "dpo/stats.json").read_text())}
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return figures


if __name__ == "__main__":
    main()
