"""generate: tree shape, pruning, the batched search against one node at a time, determinism, resume, errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import GENERATE_PARAMS, run_pipeline
from csr_compute.__main__ import main
from csr_compute.contract import EXIT_CODES
from csr_compute.models import load_lvlm
from csr_compute.search.group_beam import SearchSettings, expand_nodes, prefill_prompt


def trees_of(pipeline) -> list[dict]:
    return [json.loads(line) for line in (Path(pipeline.generate_spec["out_dir"]) / "trees.jsonl").read_text().splitlines()]


def test_trees_have_the_configured_shape(tiny_pipeline):
    p = GENERATE_PARAMS
    trees = trees_of(tiny_pipeline)
    assert len(trees) == 8
    for tree in trees:
        nodes = tree["nodes"]
        children: dict[int, list[dict]] = {}
        for node in nodes[1:]:
            assert nodes[node["parent"]]["depth"] == node["depth"] - 1
            children.setdefault(node["parent"], []).append(node)
        for node in nodes:
            kids = children.get(node["index"], [])
            expanded = node["index"] == 0 or (not node["final"] and not node["pruned"] and kids)
            # every expanded node got one candidate per token beam; final and pruned nodes none
            assert len(kids) == (p["num_token_beams"] if expanded else 0), (tree["id"], node["index"])
            if node["final"] or node["pruned"]:
                assert not kids
        for depth in range(1, max(n["depth"] for n in nodes) + 1):
            open_nodes = [n for n in nodes if n["depth"] == depth and not n["final"]]
            kept = [n for n in open_nodes if not n["pruned"]]
            if len(open_nodes) >= p["num_beams"]:
                assert len(kept) == p["keep_top"] + p["keep_bottom"]
                ranked = sorted(open_nodes, key=lambda n: n["score"], reverse=True)
                assert kept[0]["score"] == ranked[0]["score"]  # the best survives
                assert sorted(n["score"] for n in kept[1:]) == sorted(n["score"] for n in ranked[-2:])
            else:
                assert len(kept) == len(open_nodes)
        for node in nodes[1:]:
            assert node["num_tokens"] == len(node["token_ids"]) <= p["max_new_tokens"]
            assert node["self_reward"] == pytest.approx(node["logprob_sum"] / node["num_tokens"])
            assert node["score"] == pytest.approx(nodes[node["parent"]]["score"] + node["self_reward"])
            assert node["final"] == (node["end"] in ("eos", "max_length"))
    assert tiny_pipeline.generate["items_total"] == 8
    assert tiny_pipeline.generate["items_computed"] == 8


def _search(model, lvlm, penalty, texts, images, responses=None):
    settings = SearchSettings(num_beams=4, num_groups=4, diversity_penalty=penalty, max_new_tokens=5,
                              sentence_end_id=lvlm.tokenizer.convert_tokens_to_ids("."),
                              eos_id=lvlm.tokenizer.eos_token_id, pad_id=lvlm.tokenizer.pad_token_id)
    caches = [prefill_prompt(model, dict(lvlm.processor(text=t, images=i, return_tensors="pt")))
              for t, i in zip(texts, images)]
    responses = responses or [[] for _ in texts]
    return expand_nodes(model, caches, responses, [5] * len(texts), settings)[0], caches


@pytest.fixture(scope="module")
def lvlm_and_inputs(tiny_models):
    from PIL import Image

    lvlm = load_lvlm(tiny_models.lvlm, "cpu")
    prompts = json.loads(Path(tiny_models.prompts_file).read_text())
    texts = [lvlm.prompt_text(p["input"]) for p in prompts[:4]]
    images = [Image.open(Path(tiny_models.images_dir) / p["image"]).convert("RGB") for p in prompts[:4]]
    return lvlm, texts, images


def test_self_reward_is_the_models_own_log_probability(lvlm_and_inputs):
    """Candidates from the batched, cached, padded search score like a plain forward pass over the full text."""
    lvlm, texts, images = lvlm_and_inputs
    responses = [[], lvlm.tokenizer.convert_tokens_to_ids(["a", "cat", "."]), [], lvlm.tokenizer.convert_tokens_to_ids(["the"])]
    candidates, _ = _search(lvlm.model, lvlm, 3.0, texts, images, responses)
    for text, image, response, node_candidates in zip(texts, images, responses, candidates):
        inputs = lvlm.processor(text=text, images=image, return_tensors="pt")
        for candidate in node_candidates:
            ids = torch.cat([inputs["input_ids"], torch.tensor([response + candidate.token_ids])], dim=1)
            with torch.no_grad():
                logits = lvlm.model(input_ids=ids, pixel_values=inputs["pixel_values"]).logits[0]
            logprobs = torch.log_softmax(logits.float(), -1)
            start = inputs["input_ids"].shape[1] + len(response)
            expected = sum(logprobs[start + i - 1, t].item() for i, t in enumerate(candidate.token_ids))
            assert candidate.logprob_sum == pytest.approx(expected, abs=1e-4)


def test_diversity_penalty_makes_groups_differ(lvlm_and_inputs):
    lvlm, texts, images = lvlm_and_inputs
    same, _ = _search(lvlm.model, lvlm, 0.0, texts[:2], images[:2])
    diverse, _ = _search(lvlm.model, lvlm, 1000.0, texts[:2], images[:2])
    for node in same:  # without a penalty every single-beam group makes the same choices
        assert len({tuple(c.token_ids) for c in node}) == 1
    for node in diverse:  # with a huge one no two groups open with the same token
        assert len({c.token_ids[0] for c in node}) == len(node) == 4


def test_batched_search_matches_one_node_at_a_time(lvlm_and_inputs):
    lvlm, texts, images = lvlm_and_inputs
    responses = [[], lvlm.tokenizer.convert_tokens_to_ids(["a", "cat", "."]), [], lvlm.tokenizer.convert_tokens_to_ids(["the"])]
    batched, _ = _search(lvlm.model, lvlm, 3.0, texts, images, responses)
    for i in range(len(texts)):
        (single,), _ = _search(lvlm.model, lvlm, 3.0, [texts[i]], [images[i]], [responses[i]])
        assert [c.token_ids for c in single] == [c.token_ids for c in batched[i]]
        assert [c.logprob_sum for c in single] == pytest.approx([c.logprob_sum for c in batched[i]], abs=1e-4)


def test_same_inputs_and_seed_give_the_same_trees_and_pairs(tiny_models, tiny_pipeline, tmp_path):
    again = run_pipeline(tiny_models, tmp_path)
    for step, name in (("generate", "trees.jsonl"), ("reward", "scored.jsonl"), ("curate", "pairs.jsonl")):
        first = Path(getattr(tiny_pipeline, f"{step}_spec")["out_dir"]) / name
        second = Path(getattr(again, f"{step}_spec")["out_dir"]) / name
        assert first.read_bytes() == second.read_bytes(), step


def test_a_completed_step_returns_its_manifest_at_once(tiny_pipeline):
    from csr_compute.steps import generate

    manifest = generate.run(tiny_pipeline.generate_spec)
    assert manifest == tiny_pipeline.generate


def test_killed_generate_redoes_no_finished_prompt(tiny_models, tmp_path, compute_env):
    prompts = json.loads(Path(tiny_models.prompts_file).read_text())
    many = [{**p, "id": f"{p['id']}-{k}"} for k in range(3) for p in prompts]  # 24 prompts
    prompts_file = tmp_path / "prompts.json"
    prompts_file.write_text(json.dumps(many))
    spec = {"out_dir": str(tmp_path / "out"), "model": tiny_models.lvlm, "prompts_file": str(prompts_file),
            "images_dir": tiny_models.images_dir, "device": "cpu", "seed": 0,
            "params": {**GENERATE_PARAMS, "prompts_in_flight": 1, "batch_size": 4}}
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    command = [sys.executable, "-m", "csr_compute", "generate", "--spec", str(spec_file)]

    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=compute_env, text=True)
    deadline = time.monotonic() + 240
    for line in process.stdout:
        event = json.loads(line)
        if event["event"] == "progress" and event.get("done", 0) >= 3 and "phase" not in event:
            break
        assert time.monotonic() < deadline, "generate made no progress"
    process.send_signal(signal.SIGKILL)
    process.wait()
    trees = tmp_path / "out" / "trees.jsonl"
    before = trees.read_bytes()
    finished = [json.loads(line)["id"] for line in before.decode().splitlines()]
    assert 3 <= len(finished) < len(many), "the kill must land halfway"
    assert not (tmp_path / "out" / "manifest.json").exists()

    result = subprocess.run(command, capture_output=True, env=compute_env, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["items_reused"] == len(finished)
    assert manifest["items_computed"] == len(many) - len(finished)
    after = trees.read_bytes()
    assert after.startswith(before)  # finished prompts kept as they were, not rewritten
    ids = [json.loads(line)["id"] for line in after.decode().splitlines()]
    assert sorted(ids) == sorted(p["id"] for p in many) and len(ids) == len(set(ids))


def _run_cli(step: str, spec: dict, tmp_path: Path, capsys) -> tuple[int, dict]:
    spec_file = tmp_path / f"{step}.json"
    spec_file.write_text(json.dumps(spec))
    code = main([step, "--spec", str(spec_file)])
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return code, events[-1]


def test_bad_spec_is_not_retryable_and_names_the_field(tiny_models, tmp_path, capsys):
    spec = {"out_dir": str(tmp_path / "o"), "model": tiny_models.lvlm, "prompts_file": tiny_models.prompts_file,
            "images_dir": tiny_models.images_dir, "params": {**GENERATE_PARAMS, "num_beam_groups": 2}}
    code, event = _run_cli("generate", spec, tmp_path, capsys)
    assert code == EXIT_CODES["bad_spec"]
    assert "params.num_beam_groups" in event["message"] and "divisor of num_token_beams (5)" in event["message"]
    code, event = _run_cli("generate", {**spec, "params": {"num_beamz": 5}}, tmp_path, capsys)
    assert code == EXIT_CODES["bad_spec"] and "params.num_beamz" in event["message"]


def test_missing_model_is_not_retryable(tiny_models, tmp_path, capsys):
    spec = {"out_dir": str(tmp_path / "o"), "model": str(tmp_path / "nowhere"), "prompts_file": tiny_models.prompts_file,
            "images_dir": tiny_models.images_dir, "device": "cpu", "params": GENERATE_PARAMS}
    code, event = _run_cli("generate", spec, tmp_path, capsys)
    assert code == EXIT_CODES["missing_input"] and "nowhere" in event["message"]


def test_calibrated_pruning_keeps_best_and_worst_by_calibrated_path_value(tiny_models, tmp_path):
    from csr_compute.steps import generate

    spec = {"out_dir": str(tmp_path / "g"), "model": tiny_models.lvlm, "prompts_file": tiny_models.prompts_file,
            "images_dir": tiny_models.images_dir, "device": "cpu", "limit": 4, "clip": tiny_models.clip,
            "reward": {"calibration": "rank", "alpha": 0.9},
            "params": {**GENERATE_PARAMS, "prune_by": "calibrated"}}
    generate.run(spec)
    trees = [json.loads(line) for line in (tmp_path / "g" / "trees.jsonl").read_text().splitlines()]
    pruned_depths = 0
    for tree in trees:
        nodes = tree["nodes"]

        def path_mean(node):  # mean calibrated value of the path's sentences (rank form: lower is better)
            values = []
            while node["index"] > 0:
                values.append(node["calibrated"])
                node = nodes[node["parent"]]
            return sum(values) / len(values)

        assert all("clip" in n and "calibrated" in n for n in nodes[1:])
        for depth in range(1, max(n["depth"] for n in nodes) + 1):
            open_nodes = [n for n in nodes if n["depth"] == depth and not n["final"]]
            if len(open_nodes) < 5:
                continue
            pruned_depths += 1
            ranked = sorted(open_nodes, key=path_mean)
            kept = {n["index"] for n in open_nodes if not n["pruned"]}
            assert kept == {ranked[0]["index"], ranked[-1]["index"], ranked[-2]["index"]}
    assert pruned_depths > 0


def _grow(lvlm, images_dir, prompts, params, grower_cls=None):
    from csr_compute.steps.generate import GenerateParams, TreeGrower

    grower = (grower_cls or TreeGrower)(lvlm, GenerateParams(**params), images_dir)
    queue, pool, trees = list(prompts), [], {}
    while queue or pool:
        while queue and len(pool) < grower.params.prompts_in_flight:
            pool.append(grower.start(queue.pop(0)))
        grower.grow_round(pool)
        for entry in [e for e in pool if e[0].done]:
            trees[entry[2]["id"]] = entry[0].nodes
            grower.finish(entry)
            pool.remove(entry)
    return trees, grower


@pytest.mark.parametrize("batch_size, in_flight", [(1, 1), (3, 2), (8, 4), (32, 8)])
def test_fp32_trees_do_not_depend_on_batch_size(tiny_models, batch_size, in_flight):
    """fp32: trees grown one node at a time equal trees grown in batches of any size (text, tokens, scores)."""
    lvlm = load_lvlm(tiny_models.lvlm, "cpu")
    prompts = json.loads(Path(tiny_models.prompts_file).read_text())[:4]
    params = {**GENERATE_PARAMS}
    single, _ = _grow(lvlm, tiny_models.images_dir, prompts, {**params, "batch_size": 1, "prompts_in_flight": 1})
    batched, _ = _grow(lvlm, tiny_models.images_dir, prompts, {**params, "batch_size": batch_size, "prompts_in_flight": in_flight})
    assert single.keys() == batched.keys()
    for pid in single:
        assert [n["token_ids"] for n in single[pid]] == [n["token_ids"] for n in batched[pid]], pid
        assert [n["pruned"] for n in single[pid]] == [n["pruned"] for n in batched[pid]], pid
        assert [n["score"] for n in single[pid]] == pytest.approx([n["score"] for n in batched[pid]], abs=1e-4)


def test_prompt_prefix_is_stored_once_per_prompt(tiny_models):
    """The cache's bytes: each prompt's prefix once (not per node, not per beam) + each row's own suffix only."""
    lvlm = load_lvlm(tiny_models.lvlm, "cpu")
    prompts = json.loads(Path(tiny_models.prompts_file).read_text())[:4]
    _, grower = _grow(lvlm, tiny_models.images_dir, prompts, {**GENERATE_PARAMS, "batch_size": 32, "prompts_in_flight": 4})
    config = lvlm.model.config.text_config
    head_dim = config.hidden_size // config.num_attention_heads
    per_token = 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * 4
    pool = grower.pool
    assert len(pool.lengths) == 4  # one slot per prompt in flight, reused, never one per node
    prefix_len = max(pool.capacity, 1)
    assert pool.nbytes() == 4 * prefix_len * per_token
    # Peak (pool + node responses + suffix rows, as allocated) against the analytic minimum (each prompt and
    # node response once + each row's real tokens). A copy of the ~25-token prefix per beam row would put the
    # peak at > 2.5x the minimum here; what remains is padding (prompts to the longest, suffixes grown in steps).
    assert grower.kv["min_kv_bytes"] <= grower.kv["peak_kv_bytes"] <= 2.0 * grower.kv["min_kv_bytes"], grower.kv


def test_nodes_of_one_prompt_share_one_prefix(lvlm_and_inputs):
    """Four nodes x 4 beams of one prompt: the pool holds that prompt once; rows hold only their suffix."""
    lvlm, texts, images = lvlm_and_inputs
    inputs = dict(lvlm.processor(text=texts[0], images=images[0], return_tensors="pt"))
    cache = prefill_prompt(lvlm.model, inputs)
    settings = SearchSettings(num_beams=4, num_groups=4, diversity_penalty=3.0, max_new_tokens=5,
                              sentence_end_id=lvlm.tokenizer.convert_tokens_to_ids("."),
                              eos_id=lvlm.tokenizer.eos_token_id, pad_id=lvlm.tokenizer.pad_token_id)
    stats: dict = {}
    expand_nodes(lvlm.model, [cache] * 4, [[], [], [], []], [5] * 4, settings, stats=stats)
    config = lvlm.model.config.text_config
    per_token = 2 * config.num_hidden_layers * config.num_key_value_heads * (config.hidden_size // config.num_attention_heads) * 4
    assert cache.pool.nbytes() == cache.length * per_token  # one slot, the prompt once
    rows_peak = stats["peak_kv_bytes"] - cache.pool.nbytes()
    # 4 node responses (the last prompt token) once + 16 beam rows x 5 new tokens: no prefix in any row.
    assert rows_peak <= (4 * 1 + 16 * 5) * per_token


def test_out_of_memory_halves_the_batch_and_goes_on(tiny_models, monkeypatch):
    """A simulated OOM for passes of more than 2 nodes: the step halves nodes per pass and its trees are unchanged."""
    from csr_compute.steps import generate as gen

    lvlm = load_lvlm(tiny_models.lvlm, "cpu")
    prompts = json.loads(Path(tiny_models.prompts_file).read_text())[:3]
    params = {**GENERATE_PARAMS, "batch_size": 8, "prompts_in_flight": 3}
    expected, _ = _grow(lvlm, tiny_models.images_dir, prompts, params)
    real, sizes = gen.expand_nodes, []

    def expand_or_oom(model, prompts, *args, **kwargs):
        sizes.append(len(prompts))
        if len(prompts) > 2:
            raise torch.OutOfMemoryError("simulated: CUDA out of memory")
        return real(model, prompts, *args, **kwargs)

    monkeypatch.setattr(gen, "expand_nodes", expand_or_oom)
    trees, grower = _grow(lvlm, tiny_models.images_dir, prompts, params)
    assert grower.oom_halvings >= 1 and grower.node_cap <= 2
    assert max(sizes) > 2 and all(s <= 2 for s in sizes[sizes.index(max(sizes)) + 1:])
    for pid in expected:
        assert [n["token_ids"] for n in trees[pid]] == [n["token_ids"] for n in expected[pid]], pid


def test_memory_budget_limits_rows_per_pass(tiny_models, monkeypatch):
    """Nodes per pass stay within max_batch_tokens (nodes x response + beam rows x new tokens); trees unchanged."""
    from csr_compute.steps import generate as gen
    from csr_compute.steps.generate import GenerateParams

    lvlm = load_lvlm(tiny_models.lvlm, "cpu")
    prompts = json.loads(Path(tiny_models.prompts_file).read_text())[:4]
    expected, _ = _grow(lvlm, tiny_models.images_dir, prompts, GENERATE_PARAMS)
    real, passes = gen.expand_nodes, []

    def expand_and_record(model, caches, responses, budgets, *args, **kwargs):
        passes.append(len(caches) * (1 + max(map(len, responses)) + 5 * max(budgets)))
        return real(model, caches, responses, budgets, *args, **kwargs)

    monkeypatch.setattr(gen, "expand_nodes", expand_and_record)
    budget = 3 * (1 + 5 * 6)  # three root nodes (1 token each) of 5 beams with 6 new tokens each
    trees, grower = _grow(lvlm, tiny_models.images_dir, prompts, {**GENERATE_PARAMS, "max_batch_tokens": budget})
    assert grower.max_batch_tokens == budget
    assert max(passes) <= budget < max(passes) * 8  # limited, and not to one node per pass
    for pid in expected:
        assert [n["token_ids"] for n in trees[pid]] == [n["token_ids"] for n in expected[pid]], pid
    with pytest.raises(Exception, match="max_batch_tokens"):
        GenerateParams(max_batch_tokens=-1)
    with pytest.raises(Exception, match="dtype"):
        GenerateParams(dtype="float8")


def test_cached_response_chain_gives_the_same_candidates_as_feeding_the_response(lvlm_and_inputs):
    """A child expanded from its cached keys/values (chain) gets the candidates of one that re-feeds its response."""
    lvlm, texts, images = lvlm_and_inputs
    settings = SearchSettings(num_beams=4, num_groups=4, diversity_penalty=3.0, max_new_tokens=5,
                              sentence_end_id=lvlm.tokenizer.convert_tokens_to_ids("."),
                              eos_id=lvlm.tokenizer.eos_token_id, pad_id=lvlm.tokenizer.pad_token_id)
    caches = [prefill_prompt(lvlm.model, dict(lvlm.processor(text=t, images=i, return_tensors="pt")))
              for t, i in zip(texts[:2], images[:2])]
    roots, _ = expand_nodes(lvlm.model, caches, [[], []], [5, 5], settings, chains=[[], []])
    children = [(cache, c) for cache, node in zip(caches, roots) for c in node if c.end != "eos"][:4]
    assert children and all(c.chain for _, c in children)
    args = ([cache for cache, _ in children], [c.token_ids for _, c in children], [5] * len(children), settings)
    cached, computed_cached = expand_nodes(lvlm.model, *args, chains=[c.chain for _, c in children])
    fed, computed_fed = expand_nodes(lvlm.model, *args)
    for a, b in zip(cached, fed):
        assert [c.token_ids for c in a] == [c.token_ids for c in b]
        assert [c.logprob_sum for c in a] == pytest.approx([c.logprob_sum for c in b], abs=1e-4)
    assert computed_cached < computed_fed  # the responses were not fed again


def test_generate_reads_the_reward_section_as_the_reward_step_does_naming_fields_by_its_own_key(tmp_path):
    from csr_compute.contract import SpecError
    from csr_compute.steps.generate import GenerateSpec
    from csr_compute.steps.reward import RewardParams, RewardSpec

    base = {"out_dir": str(tmp_path / "g"), "model": "m", "prompts_file": "p.json", "images_dir": "i"}
    assert GenerateSpec(**base, reward={"calibration": "score", "alpha": 0.5}).reward == \
        RewardParams(calibration="score", alpha=0.5), "one type for the reward section"
    for bad, field_path in (({"alpha": 1.5}, "reward.alpha"), ({"batch_size": 0}, "reward.batch_size"),
                            ({"calibration": "best"}, "reward.calibration"), ({"alpah": 0.5}, "reward.alpah")):
        with pytest.raises(SpecError) as error:
            GenerateSpec(**base, reward=bad)
        assert error.value.field_path == field_path, bad
    with pytest.raises(SpecError) as error:  # the reward step holds the same section as its params
        RewardSpec(out_dir=str(tmp_path / "r"), trees=["t.jsonl"], clip="c", images_dir="i", params={"alpha": 1.5})
    assert error.value.field_path == "params.alpha"
