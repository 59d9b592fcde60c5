"""Benchmark: batched generate (this package) against a one-node-at-a-time loop in the style of the reference.

Both grow the same sentence-level beam search trees with the same model, settings and search code;
the reference style expands one node per call (batch 1) and re-encodes the prompt, image included,
for every node, as ``inference_csr/sample.py`` does with ``model.generate``. Reported: generated
tokens per second of each, their ratio, the share of candidate sentences (identified by the full
response they complete) that both produce, and the batched run's peak key/value bytes against the
analytic minimum (each prompt's prefix once + each row's own tokens). ``npm run bench`` calls
``compare`` for its ``generate_toy`` and ``generate_mid`` records.

    python compute/benchmarks/generate_vs_reference.py                 # tiny random LLaVA, built on the fly
    python compute/benchmarks/generate_vs_reference.py --model DIR --prompts FILE --images DIR

Not a test: it prints one JSON object of figures (and writes it to --out if given).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from csr_compute.models import load_lvlm
from csr_compute.search.group_beam import expand_nodes, prefill_prompt
from csr_compute.steps.generate import GenerateParams, TreeGrower


class ReferenceStyleGrower(TreeGrower):
    """One node per forward pass, prompt and image re-encoded for each node, no sharing between prompts."""

    def grow_round(self, pool):
        decode = lambda ids: self.lvlm.tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
        for tree, _, record, image in pool:
            for node, response, budget in tree.work():
                inputs = self.lvlm.processor(text=record["prompt"], images=image, return_tensors="pt").to(self.lvlm.device)
                if "pixel_values" in inputs:
                    inputs["pixel_values"] = inputs["pixel_values"].to(self.lvlm.model.dtype)
                cache = prefill_prompt(self.lvlm.model, dict(inputs))
                self.positions_computed += cache.length
                (candidates,), computed = expand_nodes(self.lvlm.model, [cache], [response], [budget], self.settings)
                self.positions_computed += computed
                tree.attach(node, candidates, decode, self.settings.eos_id)
                self.tokens_generated += sum(len(c.token_ids) for c in candidates)
            tree.close_depth(self._prune_key(tree, image), self.params.num_beams, self.params.keep_top,
                             self.params.keep_bottom)


def grow_all(grower: TreeGrower, prompts: list[dict], in_flight: int) -> tuple[dict[str, list[dict]], float]:
    """Grow every prompt's tree; the trees and the wall seconds (``grower.cpu_s``: this process's CPU seconds)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    queue, pool, trees = list(prompts), [], {}
    while queue or pool:
        while queue and len(pool) < in_flight:
            pool.append(grower.start(queue.pop(0)))
        grower.grow_round(pool)
        for entry in [e for e in pool if e[0].done]:
            trees[entry[2]["id"]] = entry[0]
            grower.finish(entry)
            pool.remove(entry)
    grower.cpu_s = time.process_time() - cpu_started
    return trees, time.perf_counter() - started


def candidate_keys(trees) -> set[tuple]:
    """Each non-root node as (prompt, full response tokens up to and including its sentence)."""
    return {(pid, tuple(tree.response_tokens(n["index"]))) for pid, tree in trees.items() for n in tree.nodes[1:]}


def compare(lvlm, params: GenerateParams, prompts: list[dict], images_dir: str) -> dict:
    """Grow the same trees batched and one node at a time; the figures of both."""
    batched = TreeGrower(lvlm, params, images_dir)
    batched_trees, batched_s = grow_all(batched, prompts, params.prompts_in_flight)
    reference = ReferenceStyleGrower(lvlm, params, images_dir)
    reference_trees, reference_s = grow_all(reference, prompts, 1)
    ours, theirs = candidate_keys(batched_trees), candidate_keys(reference_trees)
    prompt_tokens = [tree.prompt_length for tree in batched_trees.values()]
    return {
        "device": lvlm.device, "dtype": str(lvlm.model.dtype).removeprefix("torch."), "prompts": len(prompts),
        "prompt_tokens_mean": round(sum(prompt_tokens) / len(prompt_tokens), 1),
        "params": {k: getattr(params, k) for k in ("num_beams", "num_token_beams", "num_beam_groups",
                                                   "diversity_penalty", "max_new_tokens", "max_length",
                                                   "batch_size", "prompts_in_flight")},
        "batched_tokens": batched.tokens_generated, "batched_s": round(batched_s, 3),
        "batched_tokens_per_s": round(batched.tokens_generated / batched_s, 1),
        "reference_tokens": reference.tokens_generated, "reference_s": round(reference_s, 3),
        "reference_tokens_per_s": round(reference.tokens_generated / reference_s, 1),
        "speedup": round((batched.tokens_generated / batched_s) / (reference.tokens_generated / reference_s), 2),
        # On a shared CPU other jobs slow both runs unevenly; CPU seconds of this process (1 torch thread) do not move.
        "batched_cpu_s": round(batched.cpu_s, 3), "reference_cpu_s": round(reference.cpu_s, 3),
        "batched_tokens_per_cpu_s": round(batched.tokens_generated / batched.cpu_s, 1),
        "reference_tokens_per_cpu_s": round(reference.tokens_generated / reference.cpu_s, 1),
        "speedup_cpu_time": round(reference.cpu_s / batched.cpu_s * batched.tokens_generated / reference.tokens_generated, 2),
        "candidates_batched": len(ours), "candidates_reference": len(theirs),
        "identical_candidate_share": round(len(ours & theirs) / max(len(ours | theirs), 1), 4),
        "peak_kv_bytes": batched.kv["peak_kv_bytes"], "min_kv_bytes": batched.kv["min_kv_bytes"],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="LVLM folder (default: a tiny random LLaVA built in a temp folder)")
    parser.add_argument("--prompts", help="prompts JSON (default: generated with the tiny model)")
    parser.add_argument("--images", help="images folder")
    parser.add_argument("--limit", type=int, default=6, help="prompts to run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--params", default="{}", help="JSON overrides of the generate params")
    parser.add_argument("--out", help="also write the figures here (JSON)")
    args = parser.parse_args(argv)

    tmp = tempfile.TemporaryDirectory()
    if args.model is None:
        from csr_compute.fixtures.tiny_models import build_images_and_prompts, build_tiny_lvlm

        args.model = str(build_tiny_lvlm(Path(tmp.name) / "lvlm"))
        images, prompts_file = build_images_and_prompts(Path(tmp.name) / "data", count=args.limit)
        args.prompts, args.images = str(prompts_file), str(images)
    params = GenerateParams(**{"max_new_tokens": 10, "max_length": 72, **json.loads(args.params)})
    prompts = json.loads(Path(args.prompts).read_text())[:args.limit]
    lvlm = load_lvlm(args.model, args.device, args.dtype)
    figures = {"model": args.model, **compare(lvlm, params, prompts, args.images)}
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return figures


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
