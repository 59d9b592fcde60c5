"""reward and curate: filters, calibration, CLIP scores, resume, pair selection, noise filters, ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from csr_compute.search.calibration import calibrate_siblings, path_value, sibling_ranks
from csr_compute.search.filters import drop_reason, garbage_reason
from csr_compute.contract import SpecError
from csr_compute.steps import curate, reward


def read(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------ filters and calibration

@pytest.mark.parametrize("text, reason", [
    ("there is a cup .", None),
    ("a cat sits on a mat", None),
    ("это кошка", "foreign_or_emoji"),
    ("a cat 😀", "foreign_or_emoji"),
    ("ねこ", "foreign_or_emoji"),
    ("cat cat cat cat cat cat", "repetition"),
    ("cat cat cat cat cat", None),
    ("aaaaaaaaaaa", "repetition"),
    ("a\nb\nc\nd\ne\nf\ng", "newlines"),
])
def test_garbage_filters(text, reason):
    assert garbage_reason(text) == reason


def test_short_sentences_are_dropped_but_an_empty_final_node_ends_the_response():
    assert drop_reason("ok.", final=False) == "short"
    assert drop_reason("ok.", final=True) == "short"
    assert drop_reason("", final=True) is None
    assert drop_reason("", final=False) == "short"


def test_sibling_ranks_follow_the_reference():
    assert sibling_ranks([0.3, 0.9, 0.1, 0.5]) == [0.75, 0.25, 1.0, 0.5]
    children = [{"self_reward": -1.0, "clip": 20.0, "logprob_sum": -2.0},
                {"self_reward": -0.5, "clip": 10.0, "logprob_sum": -1.0}]
    calibrate_siblings(children, alpha=0.9, mode="rank")
    assert [c["rank"] for c in children] == [1.0, 0.5]
    assert [c["clip_rank"] for c in children] == [0.5, 1.0]
    assert [c["calibrated"] for c in children] == pytest.approx([0.1 * 1.0 + 0.9 * 0.5, 0.1 * 0.5 + 0.9 * 1.0])
    calibrate_siblings(children, alpha=0.9, mode="score")
    assert children[0]["calibrated"] == pytest.approx(0.9 * 20.0 + 0.1 * 2.718281828 ** -2.0)
    # rank: lower is better, and the reference divides by the path length including the root
    assert path_value([0.2, 0.4], "rank", "with_root") == pytest.approx(-0.2)
    assert path_value([0.2, 0.4], "rank", "sentences") == pytest.approx(-0.3)
    assert path_value([3.0], "score", "sentences") == 3.0


# ------------------------------------------------------------------ reward on the tiny pipeline

def test_reward_scores_and_calibrates_every_kept_sentence(tiny_models, tiny_pipeline):
    from PIL import Image

    from csr_compute.models import load_clip

    records = read(Path(tiny_pipeline.reward_spec["out_dir"]) / "scored.jsonl")
    assert len(records) == 8
    clip = load_clip(tiny_models.clip, "cpu")
    checked = echoes = 0
    for record in records:
        nodes = record["nodes"]
        for node in nodes[1:]:
            parent = nodes[node["parent"]]
            if parent["dropped"] is not None:
                assert node["dropped"] == "ancestor"
            scored = node["dropped"] is None and node["text"].strip() != ""
            assert (node["clip"] is not None) == scored
            assert (node["calibrated"] is not None) == scored
        siblings: dict[int, list[dict]] = {}
        for node in nodes[1:]:
            if node["clip"] is not None:
                siblings.setdefault(node["parent"], []).append(node)
        for group in siblings.values():
            n = len(group)
            assert sorted(c["rank"] for c in group) == pytest.approx([(i + 1) / n for i in range(n)])
            for child in group:
                assert child["calibrated"] == pytest.approx(0.1 * child["rank"] + 0.9 * child["clip_rank"])
        if checked < 3:  # the stored score is CLIP's own image-text logit
            node = next(n for n in nodes if n["clip"] is not None)
            image = Image.open(Path(tiny_models.images_dir) / record["image"]).convert("RGB")
            inputs = clip.processor(text=[node["text"]], images=image, return_tensors="pt", padding=True)
            assert node["clip"] == pytest.approx(clip.model(**inputs).logits_per_image.item(), abs=1e-4)
            checked += 1
        for node in nodes[1:]:  # echo: the highest text-embedding cosine to a scored ancestor
            ancestors, parent = [], node["parent"]
            while parent > 0:
                if nodes[parent]["clip"] is not None:
                    ancestors.append(nodes[parent]["text"])
                parent = nodes[parent]["parent"]
            if node["clip"] is None or not ancestors:
                assert node["echo"] is None
                continue
            tokens = clip.processor.tokenizer([node["text"], *ancestors], padding=True, return_tensors="pt")
            with torch.no_grad():
                embeds = clip.model.get_text_features(**tokens)
            embeds = getattr(embeds, "pooler_output", embeds)
            embeds = embeds / embeds.norm(dim=-1, keepdim=True)
            assert node["echo"] == pytest.approx(float((embeds[1:] @ embeds[0]).max()), abs=1e-4)
            echoes += 1
    assert checked == 3
    assert echoes > 0


def test_restarted_reward_skips_finished_trees(tiny_pipeline, tmp_path):
    spec = {**tiny_pipeline.reward_spec, "out_dir": str(tmp_path / "reward")}
    reward.run(spec)
    scored = tmp_path / "reward" / "scored.jsonl"
    complete = read(scored)
    lines = scored.read_text().splitlines(keepends=True)
    scored.write_text("".join(lines[:3]) + lines[3][:40])  # three trees done, the fourth torn mid-write
    (tmp_path / "reward" / "manifest.json").unlink()
    manifest = reward.run(spec)
    assert (manifest["items_reused"], manifest["items_computed"]) == (3, 5)
    assert sorted(read(scored), key=lambda r: r["id"]) == sorted(complete, key=lambda r: r["id"])


# ------------------------------------------------------------------ curate

def test_curated_pairs_differ_and_use_absolute_image_paths(tiny_pipeline):
    out = Path(tiny_pipeline.curate_spec["out_dir"])
    pairs = read(out / "pairs.jsonl")
    stats = json.loads((out / "stats.json").read_text())
    assert pairs, "the tiny pipeline must yield pairs"
    for pair in pairs:
        chosen, rejected = pair["conversations"], pair["rejected_conversations"]
        assert [t["from"] for t in chosen] == [t["from"] for t in rejected] == ["human", "gpt"]
        assert chosen[1]["value"] != rejected[1]["value"]
        assert chosen[0]["value"] == rejected[0]["value"] and "<image>" in chosen[0]["value"]
        assert Path(pair["image"]).is_absolute() and Path(pair["image"]).is_file()
        assert pair["chosen_score"] >= pair["rejected_score"]
    assert stats["pairs"] == len(pairs)
    assert stats["pairs"] + sum(v for k, v in stats.items() if k.startswith("dropped_")) == stats["prompts"] == 8
    for key in ("gap_mean", "gap_p10", "gap_p50", "gap_p90", "chosen_len_mean", "rejected_len_mean",
                "chosen_clip_mean", "rejected_clip_mean"):
        assert isinstance(stats[key], float), key
    assert read(out / "pairs_sample.jsonl") == pairs[:20]


def tree(record_id: str, image: str, paths: list[tuple[list[str], list[float]]], final=True) -> dict:
    """A scored tree (rank calibration) whose root has one chain of nodes per path."""
    nodes = [{"index": 0, "parent": -1, "depth": 0, "text": "", "final": False, "dropped": None, "clip": None,
              "calibrated": None}]
    for sentences, values in paths:
        parent = 0
        for depth, (text, value) in enumerate(zip(sentences, values), 1):
            nodes.append({"index": len(nodes), "parent": parent, "depth": depth, "text": text,
                          "final": final and depth == len(sentences), "dropped": None, "clip": 10.0 - value,
                          "calibrated": value})
            parent = nodes[-1]["index"]
    return {"id": record_id, "image": image, "input": "<image>\nDescribe the image.", "calibration": "rank",
            "nodes": nodes}


@pytest.fixture
def synthetic(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a.png", "b.png", "c.png", "d.png", "e.png"):
        (images / name).write_bytes(b"not read by curate")
    records = [
        tree("good", "a.png", [(["there is a cup ."], [0.2]), (["there is a fork ."], [1.0])]),
        tree("order", "b.png", [(["there is a cup .", "there is a plate ."], [0.2, 0.2]),
                                (["there is a plate .", "there is a cup ."], [0.6, 0.6])]),
        tree("repeat", "c.png", [(["there is a cup .", "there is a cup ."], [0.2, 0.2]),
                                 (["there is a car ."], [0.9])]),
        tree("close", "d.png", [(["there is a bus ."], [0.5]), (["there is a car ."], [0.52])]),
        tree("open", "e.png", [(["there is a dog ."], [0.5])], final=False),
    ]
    scored = tmp_path / "scored.jsonl"
    scored.write_text("".join(json.dumps(r) + "\n" for r in records))
    scenes = tmp_path / "scenes.jsonl"
    scenes.write_text("".join(json.dumps({"image": image, "objects": [{"name": n} for n in names]}) + "\n"
                              for image, names in (("a.png", ["cup", "plate"]), ("b.png", ["cup", "plate"]),
                                                   ("c.png", ["cup"]), ("d.png", ["car"]))))
    return tmp_path, scored, images, scenes


def _curate(tmp_path, scored, images, name, params, ground_truth=None):
    spec = {"out_dir": str(tmp_path / name), "scored": [str(scored)], "images_dir": str(images), "params": params}
    if ground_truth:
        spec["ground_truth"] = str(ground_truth)
    curate.run(spec)
    return read(tmp_path / name / "pairs.jsonl"), json.loads((tmp_path / name / "stats.json").read_text())


def test_curate_chooses_the_best_path_and_keeps_noise_by_default(synthetic):
    tmp_path, scored, images, scenes = synthetic
    pairs, stats = _curate(tmp_path, scored, images, "plain", {}, ground_truth=scenes)
    by_id = {p["id"]: p for p in pairs}
    assert set(by_id) == {"good", "order", "repeat", "close"}
    assert by_id["good"]["conversations"][1]["value"] == "there is a cup ."
    assert by_id["good"]["rejected_conversations"][1]["value"] == "there is a fork ."
    assert by_id["good"]["gap"] == pytest.approx(1.0 / 2 - 0.2 / 2)  # reference: divided by len(path) with root
    assert stats["dropped_no_final_path"] == 1
    # ground truth: good -> better (rejected hallucinates a fork); order -> equal; repeat -> better; close -> worse
    assert stats["gt_pairs"] == 4
    assert (stats["gt_better"], stats["gt_equal"], stats["gt_worse"]) == (0.5, 0.25, 0.25)
    assert stats["order_only_share"] == 0.25 and stats["chosen_repeats_share"] == 0.25


def test_noise_filters_drop_what_they_name(synthetic):
    tmp_path, scored, images, _ = synthetic
    pairs, stats = _curate(tmp_path, scored, images, "filtered",
                           {"min_gap": 0.05, "drop_order_only": True, "drop_repeated_objects": True})
    assert [p["id"] for p in pairs] == ["good"]
    assert (stats["dropped_order_only"], stats["dropped_repeated_objects"], stats["dropped_min_gap"]) == (1, 1, 1)


def test_curate_rejects_an_unknown_parameter(synthetic):
    from csr_compute.contract import SpecError

    tmp_path, scored, images, _ = synthetic
    with pytest.raises(SpecError, match="params.min_gapp"):
        _curate(tmp_path, scored, images, "bad", {"min_gapp": 0.1})
    with pytest.raises(SpecError, match="params.path_norm"):
        _curate(tmp_path, scored, images, "bad", {"path_norm": "tokens"})


# ------------------------------------------------------------------ standardized calibration, ties, controls

def test_standardized_calibration_weighs_both_terms_on_one_scale():
    # clip 30, 20, 10 -> z = +1.2247, 0, -1.2247; self_reward -0.1, -0.1, -0.4 -> z = +0.7071, +0.7071, -1.4142
    children = [{"self_reward": -0.1, "clip": 30.0, "logprob_sum": -1.0},
                {"self_reward": -0.1, "clip": 20.0, "logprob_sum": -1.0},
                {"self_reward": -0.4, "clip": 10.0, "logprob_sum": -4.0}]
    calibrate_siblings(children, alpha=0.5, mode="standardized")
    z = 1.5 ** 0.5
    assert [c["calibrated"] for c in children] == pytest.approx(
        [0.5 * z + 0.5 * 0.5 ** 0.5, 0.5 * 0.5 ** 0.5, -0.5 * z - 0.5 * 2 ** 0.5])
    # alpha = 1: CLIP alone; alpha = 0: the model's own score alone
    calibrate_siblings(children, alpha=1.0, mode="standardized")
    assert [c["calibrated"] for c in children] == pytest.approx([z, 0.0, -z])
    calibrate_siblings(children, alpha=0.0, mode="standardized")
    assert [c["calibrated"] for c in children] == pytest.approx([0.5 ** 0.5, 0.5 ** 0.5, -(2 ** 0.5)])
    # the raw scales no longer matter: CLIP x 100 gives the same values
    scaled = [{**c, "clip": c["clip"] * 100} for c in children]
    calibrate_siblings(scaled, alpha=0.5, mode="standardized")
    calibrate_siblings(children, alpha=0.5, mode="standardized")
    assert [c["calibrated"] for c in scaled] == pytest.approx([c["calibrated"] for c in children])
    # a lone child, or siblings that do not differ, get 0 (no information), not a division by zero
    lone = [{"self_reward": -0.3, "clip": 25.0, "logprob_sum": -1.0}]
    calibrate_siblings(lone, alpha=0.9, mode="standardized")
    assert lone[0]["calibrated"] == 0.0
    assert path_value([1.0, -0.5], "standardized", "sentences") == pytest.approx(0.25)


def test_tied_paths_are_chosen_without_regard_to_length():
    from csr_compute.search.pairs import Path as ResponsePath, choose_pair

    short = ResponsePath(leaf=1, sentences=["there is a cup ."], clips=[1.0], score=0.5)
    middle = ResponsePath(leaf=2, sentences=["there is a cup .", "there is a plate ."], clips=[1.0, 1.0], score=0.5)
    long = ResponsePath(leaf=3, sentences=["there is a cup .", "there is a plate .", "there is a fork ."],
                        clips=[1.0] * 3, score=0.5)
    picks = {tuple(p.text for p in choose_pair(order))
             for order in ([short, middle, long], [long, middle, short], [middle, long, short])}
    assert len(picks) == 1, "the tree order of tied paths must not decide the pair"
    chosen, rejected = choose_pair([short, middle, long])
    assert chosen.text != rejected.text
    # over many tied sets the chosen response is the shortest about a third of the time, not always
    shortest = 0
    for trial in range(300):
        paths = [ResponsePath(leaf=i, sentences=[f"there is a {trial} {j} ." for j in range(i + 1)], clips=[1.0] * (i + 1),
                              score=0.0) for i in range(3)]
        chosen, rejected = choose_pair(paths)
        shortest += len(chosen.sentences) == 1
    assert 60 < shortest < 140, shortest


def test_control_pairings_keep_the_same_prompts(synthetic):
    tmp_path, scored, images, scenes = synthetic
    filters = {"min_gap": 0.05, "drop_order_only": True}
    calibrated, stats = _curate(tmp_path, scored, images, "csr", filters, ground_truth=scenes)
    swapped, swapped_stats = _curate(tmp_path, scored, images, "swapped", {**filters, "pairing": "swapped"},
                                     ground_truth=scenes)
    assert [p["id"] for p in swapped] == [p["id"] for p in calibrated] == ["good", "repeat"]
    for a, b in zip(calibrated, swapped):
        assert a["conversations"] == b["rejected_conversations"] and a["rejected_conversations"] == b["conversations"]
        assert b["gap"] == pytest.approx(-a["gap"])
    assert (stats["gt_better"], swapped_stats["gt_worse"]) == (1.0, 1.0)
    randomised, _ = _curate(tmp_path, scored, images, "random", {**filters, "pairing": "random"})
    assert [p["id"] for p in randomised] == ["good", "repeat"]
    for pair in randomised:
        assert pair["conversations"][1]["value"] != pair["rejected_conversations"][1]["value"]
    again, _ = _curate(tmp_path, scored, images, "random-again", {**filters, "pairing": "random"})
    assert again == randomised, "random pairs are drawn from the run seed and prompt id"
    with pytest.raises(Exception, match="params.pairing"):
        _curate(tmp_path, scored, images, "bad-pairing", {"pairing": "shuffled"})


def _tree(*paths: list[tuple]) -> list[dict]:
    """A scored tree in the reward step's node format: one root, then each path as its own chain.

    A sentence is (text, value) or (text, value, echo)."""
    nodes = [{"index": 0, "parent": -1, "text": "", "calibrated": None, "clip": None, "final": False, "dropped": None,
              "echo": None}]
    for path in paths:
        parent = 0
        for depth, (text, value, *echo) in enumerate(path):
            nodes.append({"index": len(nodes), "parent": parent, "text": text, "calibrated": value, "clip": value,
                          "final": depth == len(path) - 1, "dropped": None, "echo": echo[0] if echo else None})
            parent = len(nodes) - 1
    return nodes


def test_a_repeated_sentence_is_valued_as_the_trees_worst_sentence():
    from csr_compute.search.pairs import choose_pair, complete_paths

    nodes = _tree([("the cup is small .", 9.0), ("the cup is small .", 9.0), ("the Cup is small", 8.0)],
                  [("the cup is small .", 9.0), ("the dog is big .", 6.0)],
                  [("the hat is big .", 1.0)])
    own = complete_paths(nodes, "score", "with_root")
    # the paper's reward: (9 + 9 + 8) / 4 = 6.5 beats (9 + 6) / 3 = 5: the repeating path is chosen
    assert [p.score for p in own] == pytest.approx([6.5, 5.0, 0.5])
    assert choose_pair(own)[0].sentences[1] == "the cup is small ."
    worst = complete_paths(nodes, "score", "with_root", repeated="worst")
    # repeats (case, spacing and the stop ignored) count as the tree's worst sentence, 1.0: (9 + 1 + 1) / 4
    assert [p.score for p in worst] == pytest.approx([2.75, 5.0, 0.5])
    chosen, rejected = choose_pair(worst)
    assert chosen.text == "the cup is small . the dog is big ." and rejected.text == "the hat is big ."
    # rank mode: lower is better, so the worst is the largest value, and the path value is negated
    ranked = _tree([("a .", 0.2), ("a .", 0.2)], [("b .", 0.6)])
    assert [p.score for p in complete_paths(ranked, "rank", "sentences", repeated="worst")] == pytest.approx([-0.4, -0.6])


def test_a_sentence_close_to_an_earlier_one_by_clip_text_similarity_is_a_repeat_too():
    from csr_compute.search.pairs import choose_pair, complete_paths

    # "the hat" says again what "the cap" said (echo 0.99); "the dog" is new (echo 0.2)
    nodes = _tree([("the cap is small .", 9.0), ("the hat is small .", 9.0, 0.99)],
                  [("the cap is small .", 9.0), ("the dog is big .", 6.0, 0.2)],
                  [("the hat is big .", 1.0)])
    # with the same words only (similarity 1), the synonym keeps its own value: (9 + 9) / 3 = 6
    words = complete_paths(nodes, "score", "with_root", repeated="worst")
    assert [p.score for p in words] == pytest.approx([6.0, 5.0, 0.5])
    # at 0.9 it is a repeat, valued as the tree's worst sentence (1.0): (9 + 1) / 3
    close = complete_paths(nodes, "score", "with_root", repeated="worst", similarity=0.9)
    assert [p.score for p in close] == pytest.approx([10 / 3, 5.0, 0.5])
    assert choose_pair(close)[0].text == "the cap is small . the dog is big ."
    # the threshold is inclusive; "score" mode ignores it
    assert complete_paths(nodes, "score", "with_root", repeated="worst", similarity=0.99)[0].score == pytest.approx(10 / 3)
    assert complete_paths(nodes, "score", "with_root", similarity=0.5)[0].score == pytest.approx(6.0)


def test_repeat_similarity_needs_the_reward_steps_echoes(synthetic):
    tmp_path, scored, images, _ = synthetic  # hand-written trees without "echo", as an older reward step wrote
    with pytest.raises(SpecError, match="echo"):
        _curate(tmp_path, scored, images, "no-echo", {"repeated_sentences": "worst", "repeat_similarity": 0.9})
    with pytest.raises(SpecError, match="params.repeat_similarity"):
        _curate(tmp_path, scored, images, "bad-similarity", {"repeat_similarity": 1.5})
    # unused without 'worst', and at 1 (same words only) never read: both run
    assert _curate(tmp_path, scored, images, "unused", {"repeat_similarity": 0.9})[0]
    assert _curate(tmp_path, scored, images, "words", {"repeated_sentences": "worst", "repeat_similarity": 1})[0]


def test_repeated_sentences_must_be_a_known_choice(synthetic):
    tmp_path, scored, images, _ = synthetic
    with pytest.raises(Exception, match="params.repeated_sentences"):
        _curate(tmp_path, scored, images, "bad-repeats", {"repeated_sentences": "drop"})
    pairs, _ = _curate(tmp_path, scored, images, "worst-repeats", {"repeated_sentences": "worst"})
    assert pairs, "the option is accepted end to end by the curate step"
