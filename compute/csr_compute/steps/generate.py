"""Step ``generate``: one sentence-level beam search tree per prompt, written as each tree finishes.

Spec (``GenerateSpec``): the LVLM folder, the prompt set, the image folder, a shard, the ``generate``
section of the run config as ``params``. Output: ``trees.jsonl`` (one record per prompt, key ``id``)
and ``manifest.json``. A restarted shard skips every prompt already in ``trees.jsonl``.

Throughput: the prompt (with its image) is encoded once per prompt and its keys/values stored once
in a ``PrefixPool`` that every node and beam of its tree attends to in place (``search/shared_prefix``);
a node's response keys/values are kept from its parent's expansion (``chains``), never computed twice;
the active nodes of several prompts (``prompts_in_flight``) are expanded together, at most
``batch_size`` nodes (x ``num_token_beams`` beams) per forward pass, fewer when their suffix
keys/values would pass the memory budget (``max_batch_tokens``). On an out-of-memory error the step
halves its nodes per pass and goes on.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..contract import JsonlStore, Progress, SpecError, log, shard_slice, write_manifest
from ..search.calibration import calibrate_siblings, path_value
from ..search.group_beam import PromptCache, SearchSettings, expand_nodes, prefill_prompt
from ..search.shared_prefix import PrefixPool
from ..search.tree import SentenceTree
from ..config_bounds import check_section
from .reward import RewardParams
from .common import (StepSpec, beat, check_choice, check_float, check_int, check_str, from_dict, heartbeat, open_step,
                     require_file, resolve_image)

STEP = "generate"
PRUNE_BY = ("self_reward", "calibrated")
DTYPES = ("auto", "float32", "bfloat16", "float16")
# Automatic budget (max_batch_tokens 0 on a GPU): this share of free memory goes to suffix keys/values;
# the rest is left to logits, the attention's transient scores and the allocator's fragmentation.
AUTO_BUDGET_SHARE = 0.5


@dataclass
class GenerateParams:
    """The ``generate`` section of the run config."""

    num_beams: int = field(default=5, metadata={"help": "Sentence beams: pruning starts once a depth has this many new open nodes."})
    num_token_beams: int = field(default=5, metadata={"help": "Token-level beams per node = candidate sentences per node."})
    num_beam_groups: int = field(default=5, metadata={"help": "Diverse beam search groups (divides num_token_beams)."})
    diversity_penalty: float = field(default=3.0, metadata={"help": "Hamming diversity penalty between groups."})
    max_new_tokens: int = field(default=70, metadata={"help": "Token limit of one sentence."})
    max_length: int = field(default=1024, metadata={"help": "Token limit of prompt (image tokens included) + response; reaching it ends the response."})
    keep_top: int = field(default=1, metadata={"help": "Best open nodes kept per depth (reference code: num_beams/2 - 1)."})
    keep_bottom: int = field(default=2, metadata={"help": "Worst open nodes kept per depth (reference code: num_beams/2)."})
    prune_by: str = field(default="self_reward", metadata={"help": "'self_reward' (cumulative, reference code) or 'calibrated' (paper; needs spec.clip)."})
    batch_size: int = field(default=32, metadata={"help": "Nodes per forward pass (each brings num_token_beams rows)."})
    prompts_in_flight: int = field(default=8, metadata={"help": "Prompts whose trees grow together, so that a forward pass holds nodes of several prompts."})
    sentence_end: str = field(default=".", metadata={"help": "The token that ends a sentence (LLaMA: '.', id 29889)."})
    max_batch_tokens: int = field(default=0, metadata={"help": "Memory budget of one forward pass in KV tokens beyond the prompts: nodes x response so far + nodes x num_token_beams x max_new_tokens; 0 = sized from free GPU memory and the model's KV bytes per token (no limit on a CPU)."})
    dtype: str = field(default="auto", metadata={"help": "Model dtype for generation: 'auto' (the step's dtype: bf16 on a GPU that supports it, else fp32), 'float32', 'bfloat16', 'float16'."})

    def __post_init__(self) -> None:
        # The schema's limits (config_bounds.json), so that what the CLI accepted is accepted here;
        # first, so that a field is refused by the schema's own words before any rule combining fields.
        check_section("generate", self, "params")
        p = "params"
        check_int(f"{p}.num_beams", self.num_beams, minimum=1)
        check_int(f"{p}.num_token_beams", self.num_token_beams, minimum=1)
        check_int(f"{p}.num_beam_groups", self.num_beam_groups, minimum=1)
        if self.num_token_beams % self.num_beam_groups:
            raise SpecError(f"{p}.num_beam_groups", self.num_beam_groups,
                            f"a divisor of num_token_beams ({self.num_token_beams})")
        check_float(f"{p}.diversity_penalty", self.diversity_penalty, minimum=0.0)
        check_int(f"{p}.max_new_tokens", self.max_new_tokens, minimum=1)
        check_int(f"{p}.max_length", self.max_length, minimum=2)
        check_int(f"{p}.keep_top", self.keep_top, minimum=0)
        check_int(f"{p}.keep_bottom", self.keep_bottom, minimum=0)
        if not 1 <= self.keep_top + self.keep_bottom <= self.num_beams:
            raise SpecError(f"{p}.keep_top", self.keep_top,
                            f"keep_top + keep_bottom (now {self.keep_top + self.keep_bottom}) between 1 and num_beams ({self.num_beams})")
        check_choice(f"{p}.prune_by", self.prune_by, PRUNE_BY)
        check_int(f"{p}.batch_size", self.batch_size, minimum=1)
        check_int(f"{p}.prompts_in_flight", self.prompts_in_flight, minimum=1)
        check_str(f"{p}.sentence_end", self.sentence_end)
        check_int(f"{p}.max_batch_tokens", self.max_batch_tokens, minimum=0)
        check_choice(f"{p}.dtype", self.dtype, DTYPES)


@dataclass
class GenerateSpec(StepSpec):
    model: str = field(default="", metadata={"help": "LVLM folder (LlavaForConditionalGeneration + processor)."})
    prompts_file: str = field(default="", metadata={"help": "JSON list of {id, image, input}."})
    images_dir: str = field(default="", metadata={"help": "Folder of the prompts' images."})
    shard: dict = field(default_factory=lambda: {"index": 0, "count": 1},
                        metadata={"help": "{index, count}: this worker's contiguous slice of the prompts."})
    limit: int | None = field(default=None, metadata={"help": "Use only the first N prompts (before sharding)."})
    params: Any = field(default_factory=dict, metadata={"help": "The generate section of the config (GenerateParams)."})
    clip: str | None = field(default=None, metadata={"help": "CLIP folder; required when params.prune_by is 'calibrated'."})
    reward: Any = field(default=None, metadata={"help": "The reward section of the config (RewardParams: calibration, "
                                                       "alpha, batch_size) for calibrated pruning."})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_str("model", self.model)
        check_str("prompts_file", self.prompts_file)
        check_str("images_dir", self.images_dir)
        if not isinstance(self.shard, dict) or set(self.shard) != {"index", "count"}:
            raise SpecError("shard", self.shard, "an object {index, count}")
        check_int("shard.count", self.shard["count"], minimum=1)
        check_int("shard.index", self.shard["index"], minimum=0, maximum=self.shard["count"] - 1)
        if self.limit is not None:
            check_int("limit", self.limit, minimum=1)
        self.params = from_dict(GenerateParams, self.params, "params")
        self.reward = from_dict(RewardParams, self.reward, "reward")
        if self.params.prune_by == "calibrated":
            check_str("clip", self.clip)


def load_prompts(spec: GenerateSpec) -> list[dict[str, Any]]:
    path = require_file(spec.prompts_file, "prompts_file")
    try:
        prompts = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise SpecError("prompts_file", spec.prompts_file,
                        f"a JSON list of {{id, image, input}} ({error.msg} at line {error.lineno}, column {error.colno})") from None
    if not isinstance(prompts, list):
        raise SpecError("prompts_file", spec.prompts_file, "a JSON list of {id, image, input}")
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, dict) or not {"id", "image", "input"} <= set(prompt):
            raise SpecError(f"prompts_file[{i}]", prompt, "an object with id, image and input")
    ids = [str(p["id"]) for p in prompts]
    if len(set(ids)) != len(ids):
        raise SpecError("prompts_file", spec.prompts_file, "unique prompt ids")
    if spec.limit is not None:
        prompts = prompts[:spec.limit]
    return shard_slice(prompts, spec.shard["index"], spec.shard["count"])


class TreeGrower:
    """Grows the trees of a pool of prompts, depth by depth, with batched node expansion."""

    def __init__(self, lvlm: Any, params: GenerateParams, images_dir: str, clip: Any = None,
                 reward: RewardParams | None = None, progress: Progress | None = None):
        self.lvlm, self.params, self.images_dir = lvlm, params, images_dir
        self.clip, self.reward, self.progress = clip, reward, progress
        self._last_beat = time.monotonic()
        tokenizer = lvlm.tokenizer
        sentence_end_id = tokenizer.convert_tokens_to_ids(params.sentence_end)
        if sentence_end_id is None or sentence_end_id == tokenizer.unk_token_id:
            raise SpecError("params.sentence_end", params.sentence_end, "a token of the model's vocabulary")
        self.settings = SearchSettings(
            num_beams=params.num_token_beams, num_groups=params.num_beam_groups,
            diversity_penalty=params.diversity_penalty, max_new_tokens=params.max_new_tokens,
            sentence_end_id=sentence_end_id, eos_id=tokenizer.eos_token_id,
            pad_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
        self.tokens_generated = 0
        self.positions_computed = 0
        self.pool = PrefixPool()
        # Per open node, the keys/values of its response (chunks shared with its parent and siblings), so that
        # an expansion feeds only the response's last token instead of the whole response again.
        self.chains: dict[tuple[int, int], list] = {}
        self.node_cap = params.batch_size  # halved on each out-of-memory error
        self.oom_halvings = 0
        self.kv = {"peak_kv_bytes": 0, "min_kv_bytes": 0}
        self.max_batch_tokens = params.max_batch_tokens or self._auto_budget()

    def _auto_budget(self) -> int:
        """Suffix tokens per pass from free GPU memory and KV bytes per token; no limit on a CPU."""
        import torch

        device = str(self.lvlm.device)
        if not device.startswith("cuda"):
            return 0
        config = getattr(self.lvlm.model.config, "text_config", self.lvlm.model.config)
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        per_token = 2 * config.num_hidden_layers * kv_heads * head_dim * self.lvlm.model.dtype.itemsize
        free, _ = torch.cuda.mem_get_info()
        free += torch.cuda.memory_reserved() - torch.cuda.memory_allocated()
        budget = int(free * AUTO_BUDGET_SHARE) // per_token
        log(f"generate: memory budget {budget} suffix tokens per pass ({free / 2**30:.1f} GiB free, "
            f"{per_token} KV bytes per token); set generate.max_batch_tokens to override")
        return max(budget, 1)

    def start(self, prompt: dict[str, Any]) -> tuple[SentenceTree, PromptCache, dict[str, Any], Any]:
        from PIL import Image

        image_path = resolve_image(self.images_dir, prompt["image"])
        image = Image.open(image_path).convert("RGB")
        text = self.lvlm.prompt_text(prompt["input"])
        inputs = self.lvlm.processor(text=text, images=image, return_tensors="pt").to(self.lvlm.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.lvlm.model.dtype)
        cache = prefill_prompt(self.lvlm.model, dict(inputs), self.pool)
        tree = SentenceTree(prompt_id=str(prompt["id"]), prompt_length=cache.length + 1,
                            max_length=self.params.max_length, max_new_tokens=self.params.max_new_tokens)
        self.chains[(id(tree), 0)] = []
        if tree.prompt_length >= self.params.max_length:
            raise SpecError("params.max_length", self.params.max_length,
                            f"more than the prompt length ({tree.prompt_length} tokens for prompt {prompt['id']!r})")
        record = {"id": str(prompt["id"]), "image": prompt["image"], "image_path": str(image_path),
                  "input": prompt["input"], "prompt": text, "prompt_tokens": tree.prompt_length}
        return tree, cache, record, image

    def grow_round(self, pool: list[tuple[SentenceTree, PromptCache, dict[str, Any], Any]]) -> None:
        """Expand every active node of every tree in the pool by one sentence, then prune each tree."""
        work = [(tree, cache, node, response, budget)
                for tree, cache, _, _ in pool for node, response, budget in tree.work()]
        decode = lambda ids: self.lvlm.tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
        import torch

        start = 0
        while start < len(work):
            chunk = self._chunk(work, start)
            try:
                candidates, computed = expand_nodes(
                    self.lvlm.model, [c for _, c, _, _, _ in chunk], [r for _, _, _, r, _ in chunk],
                    [b for _, _, _, _, b in chunk], self.settings, on_step=self._heartbeat, stats=self.kv,
                    chains=[self.chains[(id(tree), node)] for tree, _, node, _, _ in chunk],
                    held_bytes=self._held_bytes())
            except torch.OutOfMemoryError:
                if len(chunk) == 1:
                    raise
                self.node_cap = max(1, len(chunk) // 2)
                self.oom_halvings += 1
                log(f"generate: out of memory with {len(chunk)} nodes per pass; going on with {self.node_cap}"
                    " (lower generate.batch_size or generate.max_batch_tokens to avoid the retry)")
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            start += len(chunk)
            self.positions_computed += computed
            for (tree, _, node, _, _), node_candidates in zip(chunk, candidates):
                first_child = len(tree.nodes)
                tree.attach(node, node_candidates, decode, self.settings.eos_id)
                del self.chains[(id(tree), node)]
                for child, candidate in enumerate(node_candidates, start=first_child):
                    if not tree.nodes[child]["final"]:
                        self.chains[(id(tree), child)] = candidate.chain
                    candidate.chain = None
                self.tokens_generated += sum(len(c.token_ids) for c in node_candidates)
        for tree, _, _, image in pool:
            tree.close_depth(self._prune_key(tree, image), self.params.num_beams, self.params.keep_top,
                             self.params.keep_bottom)
            for node in tree.nodes:
                if node["pruned"]:
                    self.chains.pop((id(tree), node["index"]), None)

    def _held_bytes(self) -> int:
        """Bytes of the cached response chains (chunks shared between nodes counted once)."""
        seen, total = set(), 0
        for chain in self.chains.values():
            for keys, values in chain:
                if id(keys) not in seen:
                    seen.add(id(keys))
                    total += 2 * keys.numel() * keys.element_size()
        return total

    def _chunk(self, work: list, start: int) -> list:
        """The next nodes of one pass: at most ``node_cap`` nodes and ``max_batch_tokens`` suffix tokens (at least one node)."""
        rows_per_node = self.settings.num_beams
        chunk, longest, most_new = [], 0, 0
        for item in work[start:start + self.node_cap]:
            longest, most_new = max(longest, 1 + len(item[3])), max(most_new, item[4])
            # Each node's response is held once, each beam row's new tokens once per row.
            if chunk and self.max_batch_tokens and (len(chunk) + 1) * (longest + rows_per_node * most_new) > self.max_batch_tokens:
                break
            chunk.append(item)
        return chunk

    def finish(self, entry: tuple[SentenceTree, PromptCache, dict[str, Any], Any]) -> None:
        """A finished tree gives its prompt's slot back to the pool (and drops any cached chain)."""
        entry[1].release()
        for key in [k for k in self.chains if k[0] == id(entry[0])]:
            del self.chains[key]

    def _heartbeat(self) -> None:
        """A progress event at most every 2 s while trees grow: one prompt can take minutes on a big model."""
        if self.progress is None or time.monotonic() - self._last_beat < 2.0:
            return
        self._last_beat = time.monotonic()
        beat(self.progress, "search", tokens=self.tokens_generated)

    def _prune_key(self, tree: SentenceTree, image: Any):
        if self.params.prune_by == "self_reward":
            return lambda index: tree.nodes[index]["score"]
        # Calibrated pruning (the paper): CLIP-score this depth's new sentences, calibrate among
        # siblings, and rank open nodes by the mean calibrated value of their path.
        new = [n for n in tree.nodes if n["parent"] in set(tree.expanded_this_depth)]
        scores = self.clip.score(image, [n["text"] for n in new])
        by_parent: dict[int, list[dict[str, Any]]] = {}
        for node, score in zip(new, scores):
            node["clip"] = score
            by_parent.setdefault(node["parent"], []).append(node)
        for siblings in by_parent.values():
            calibrate_siblings(siblings, self.reward.alpha, self.reward.calibration)

        def key(index: int) -> float:
            values = []
            while index > 0:
                values.append(tree.nodes[index].get("calibrated", 0.0))
                index = tree.nodes[index]["parent"]
            return path_value(values, self.reward.calibration, "sentences")
        return key


def run(raw_spec: dict[str, Any]) -> dict[str, Any]:
    spec, done = open_step(GenerateSpec, raw_spec, STEP)
    if done is not None:
        return done
    from ..models import load_clip, load_lvlm

    prompts = load_prompts(spec)
    progress = Progress(STEP, total=len(prompts), unit="prompts")
    progress.start()
    out = Path(spec.out_dir)
    store = JsonlStore(out / "trees.jsonl")
    try:
        todo = [p for p in prompts if str(p["id"]) not in store]
        reused = len(prompts) - len(todo)
        if reused:
            progress.advance(reused, reused=True)
        grower = None
        started = time.monotonic()
        if todo:
            with heartbeat(progress, "load_model"):
                lvlm = load_lvlm(spec.model, spec.device, spec.params.dtype if spec.params.dtype != "auto" else spec.dtype)
                clip = None
                if spec.params.prune_by == "calibrated":
                    from ..search.clip_score import ClipScorer

                    loaded = load_clip(spec.clip, lvlm.device)
                    clip = ClipScorer(loaded.model, loaded.processor, loaded.device, spec.reward.batch_size)
            grower = TreeGrower(lvlm, spec.params, spec.images_dir, clip, spec.reward, progress)
            queue = list(todo)
            pool: list = []
            while queue or pool:
                while queue and len(pool) < spec.params.prompts_in_flight:
                    pool.append(grower.start(queue.pop(0)))
                grower.grow_round(pool)
                for entry in [e for e in pool if e[0].done]:
                    tree, _, record, _ = entry
                    store.append({**record, "nodes": tree.nodes})
                    grower.finish(entry)
                    pool.remove(entry)
                    progress.advance(1, tokens=grower.tokens_generated)
        elapsed = time.monotonic() - started
        records = [store.get(str(p["id"])) for p in prompts]
    finally:
        store.close()
    nodes = [n for r in records for n in r["nodes"]]
    stats = {
        "prompts": len(prompts),
        "nodes": len(nodes),
        "final_nodes": sum(n["final"] for n in nodes),
        "max_depth": max((n["depth"] for n in nodes), default=0),
        "tokens_generated": grower.tokens_generated if grower else 0,
        "tokens_per_s": round(grower.tokens_generated / elapsed, 2) if grower and elapsed > 0 else 0.0,
        "peak_kv_bytes": grower.kv["peak_kv_bytes"] if grower else 0,
        "min_kv_bytes": grower.kv["min_kv_bytes"] if grower else 0,
        "oom_halvings": grower.oom_halvings if grower else 0,
    }
    return write_manifest(spec.out_dir, step=STEP, spec=raw_spec, files=["trees.jsonl"], items_total=len(prompts),
                          items_reused=reused, items_computed=len(todo), stats=stats)

