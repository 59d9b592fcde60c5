"""Generation at real scale on one GPU: a random LLaVA-1.5-7B-shaped model, built from configs (no weights).

    python compute/benchmarks/gpu_scale.py                       # on a GPU: 7B shapes, bf16 (~5 min on an H200)
    python compute/benchmarks/gpu_scale.py --shape tiny --device cpu --dtype float32 --prompts 2 --memory-s 20
                                                                 # dry run on a CPU at tiny size

Three measurements, one JSON object of figures (stdout, and ``--out``):

1. ``compare``: the tree search (``TreeGrower``) vs the reference-style loop (one node per call, prompt and
   image re-encoded per node), tokens/s and the share of identical candidates, at the reference settings
   (5 sentence beams, 5 token beams in 5 groups, diversity 3.0) with sentences cut at ``--sentence-tokens``.
2. ``greedy``: plain greedy ``model.generate`` at batch 1 and 32 (the yardstick of plain batched decoding).
3. ``memory``: the tree search at ``configs/llava15-7b.yaml``'s generate settings (70 tokens per sentence,
   max_length 1024, batch_size 32, prompts_in_flight 8) for ``--memory-s`` seconds: peak allocated GPU
   memory (weights included), the pool + suffix KV bytes against the analytic minimum, tokens/s.

The model has LLaVA-1.5-7B's shapes (CLIP ViT-L/14-336 tower, Llama 32 x 4096) and the tiny test model's
word-level tokenizer, so prompts are ~590 tokens (576 image tokens) and every id decodes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))


def greedy(lvlm, prompts: list[dict], images_dir: str, batch: int, new_tokens: int) -> dict:
    """Plain greedy ``generate`` of ``new_tokens`` tokens for ``batch`` prompts at once; tokens/s."""
    import torch
    from PIL import Image

    chosen = [prompts[i % len(prompts)] for i in range(batch)]
    texts = [lvlm.prompt_text(p["input"]) for p in chosen]
    images = [Image.open(Path(images_dir) / p["image"]).convert("RGB") for p in chosen]
    tokenizer = lvlm.tokenizer
    tokenizer.padding_side = "left"
    inputs = lvlm.processor(text=texts, images=images, return_tensors="pt", padding=True).to(lvlm.device)
    inputs["pixel_values"] = inputs["pixel_values"].to(lvlm.model.dtype)
    sync = torch.cuda.synchronize if str(lvlm.device).startswith("cuda") else (lambda: None)
    sync()
    started = time.perf_counter()
    with torch.inference_mode():
        out = lvlm.model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                  pad_token_id=tokenizer.pad_token_id)
    sync()
    seconds = time.perf_counter() - started
    generated = (out.shape[1] - inputs["input_ids"].shape[1]) * batch
    return {"batch": batch, "tokens": generated, "seconds": round(seconds, 3), "tokens_per_s": round(generated / seconds, 1)}


def memory_run(lvlm, prompts: list[dict], images_dir: str, params, seconds: float) -> dict:
    """Grow trees at ``params`` for about ``seconds``; peak memory and KV bytes."""
    import torch

    from csr_compute.steps.generate import TreeGrower

    cuda = str(lvlm.device).startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    grower = TreeGrower(lvlm, params, images_dir)
    queue, pool, done = list(prompts), [], 0
    started = time.perf_counter()
    while (queue or pool) and time.perf_counter() - started < seconds:
        while queue and len(pool) < params.prompts_in_flight:
            pool.append(grower.start(queue.pop(0)))
        grower.grow_round(pool)
        for entry in [e for e in pool if e[0].done]:
            grower.finish(entry)
            pool.remove(entry)
            done += 1
    elapsed = time.perf_counter() - started
    figures = {"seconds": round(elapsed, 1), "prompts_done": done, "tokens": grower.tokens_generated,
               "tokens_per_s": round(grower.tokens_generated / elapsed, 1), **grower.kv,
               "kv_ratio": round(grower.kv["peak_kv_bytes"] / max(grower.kv["min_kv_bytes"], 1), 3),
               "max_batch_tokens": grower.max_batch_tokens, "oom_halvings": grower.oom_halvings}
    if cuda:
        figures["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        figures["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
    return figures


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="7b", help="random_llava shape: 7b, mid or tiny")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--prompts", type=int, default=4, help="prompts of the comparison (the memory run takes 8)")
    parser.add_argument("--sentence-tokens", type=int, default=24, help="max_new_tokens of the comparison")
    parser.add_argument("--depths", type=int, default=2, help="sentences per response in the comparison (sets max_length)")
    parser.add_argument("--greedy-tokens", type=int, default=64)
    parser.add_argument("--memory-s", type=float, default=90.0, help="seconds of the run at the llava15-7b settings")
    parser.add_argument("--out")
    args = parser.parse_args(argv)

    import torch
    from generate_vs_reference import compare
    from random_llava import random_llava

    from csr_compute.config import load_config
    from csr_compute.fixtures.tiny_models import build_images_and_prompts
    from csr_compute.models import LoadedLvlm, set_threads_from_env
    from csr_compute.steps.generate import GenerateParams

    set_threads_from_env()
    started = time.perf_counter()
    model, processor = random_llava(args.shape, device=args.device, dtype=args.dtype)
    lvlm = LoadedLvlm(model=model, processor=processor, device=args.device)
    tmp = tempfile.TemporaryDirectory()
    images, prompts_file = build_images_and_prompts(Path(tmp.name), count=8)
    prompts = json.loads(prompts_file.read_text())
    figures: dict = {"shape": args.shape, "device": args.device, "dtype": args.dtype,
                     "parameters_b": round(sum(p.numel() for p in model.parameters()) / 1e9, 3),
                     "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                     "build_s": round(time.perf_counter() - started, 1)}
    print(f"[gpu_scale] model built: {figures}", file=sys.stderr, flush=True)

    from PIL import Image

    prompt_len = max(len(processor(text=lvlm.prompt_text(p["input"]), images=Image.open(images / p["image"]).convert("RGB"),
                                   return_tensors="pt")["input_ids"][0]) for p in prompts)
    figures["prompt_tokens_max"] = prompt_len
    cut = GenerateParams(max_new_tokens=args.sentence_tokens, max_length=prompt_len + args.depths * args.sentence_tokens)
    result = compare(lvlm, cut, prompts[:args.prompts], str(images))
    figures["compare"] = {k: result[k] for k in ("prompts", "prompt_tokens_mean", "params", "batched_tokens_per_s",
                                                 "reference_tokens_per_s", "speedup", "identical_candidate_share",
                                                 "peak_kv_bytes", "min_kv_bytes", "batched_s", "reference_s")}
    print(f"[gpu_scale] compare: {figures['compare']}", file=sys.stderr, flush=True)

    figures["greedy"] = [greedy(lvlm, prompts, str(images), batch, args.greedy_tokens) for batch in (1, 32)]
    figures["tree_vs_greedy32"] = round(result["batched_tokens_per_s"] / figures["greedy"][1]["tokens_per_s"], 2)
    print(f"[gpu_scale] greedy: {figures['greedy']}", file=sys.stderr, flush=True)

    config = load_config(HERE.parents[1] / "configs" / "llava15-7b.yaml")
    figures["memory"] = memory_run(lvlm, prompts, str(images), config.generate, args.memory_s)
    figures["memory"]["params"] = {k: getattr(config.generate, k) for k in ("max_new_tokens", "max_length", "batch_size",
                                                                          "prompts_in_flight", "max_batch_tokens")}
    figures["total_s"] = round(time.perf_counter() - started, 1)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return figures


if __name__ == "__main__":
    main()
