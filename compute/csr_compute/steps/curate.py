"""Step ``curate``: one chosen/rejected pair per prompt from the scored trees, plus statistics.

Every complete path is scored by its mean calibrated sentence value; chosen = best, rejected = worst
(with a different text; ties broken by a hash of the text, not by length). Controls (``pairing``):
``swapped`` trains on rejected-over-chosen and ``random`` on two random responses of the same tree,
for the same prompts that the calibrated pairing keeps, so a control has the same number of pairs.
A sentence that repeats an earlier one of its response can be valued as the tree's worst sentence
(``repeated_sentences: worst``), so that padding with repeats loses instead of wins; with
``repeat_similarity`` below 1, so is one whose CLIP text embedding is that close to an earlier one's
(the reward step's ``echo``): the same thing said in other words.
Noise filters, each off by default (the reference has none): a minimum calibrated gap, pairs that differ only in sentence order, chosen responses that repeat a sentence.
With ``ground_truth`` (the toy world's scenes.jsonl) the pairs are also judged against the truth.

Outputs: ``pairs.jsonl`` (LLaVA/CSR conversation format, absolute image paths), ``stats.json``
(flat numbers for MLflow), ``pairs_sample.jsonl`` (the first pairs, for a person to read).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..contract import Progress, SpecError, atomic_write_json, atomic_write_text, log, write_manifest
from ..search.calibration import PATH_NORMS
from ..search.pairs import PAIRINGS, REPEATED_SENTENCES, choose_pair, complete_paths, control_pair, order_only, repeats_itself
from ..config_bounds import check_section
from .common import (StepSpec, check_bool, check_choice, check_float, check_int, check_paths, check_str, from_dict,
                     open_step, read_jsonl, require_file, resolve_image)

STEP = "curate"
DROP_REASONS = ("no_final_path", "identical", "min_gap", "order_only", "repeated_objects")


@dataclass
class CurateParams:
    """The ``curate`` section of the run config."""

    min_gap: float = field(default=0.0, metadata={"help": "Drop pairs whose calibrated path-score gap is below this (0 = off)."})
    drop_order_only: bool = field(default=False, metadata={"help": "Drop pairs whose responses hold the same sentences in another order."})
    drop_repeated_objects: bool = field(default=False, metadata={"help": "Drop pairs whose chosen response repeats a sentence."})
    path_norm: str = field(default="with_root", metadata={"help": "Path score divisor: 'with_root' (sentences + 1, reference code) or 'sentences'."})
    sample_size: int = field(default=20, metadata={"help": "Pairs copied to pairs_sample.jsonl."})
    repeated_sentences: str = field(default="score", metadata={"help": "Value of a sentence that repeats an earlier one of its response: 'score' (its own, as the paper) or 'worst' (the tree's worst sentence value)."})
    repeat_similarity: float = field(default=1.0, metadata={"help": "With repeated_sentences 'worst': a sentence whose CLIP text similarity to an earlier one of its response (the reward step's echo) is at least this is a repeat too; 1 = same words only."})
    pairing: str = field(default="calibrated", metadata={"help": "'calibrated' (CSR), or a control on the same prompts: 'swapped' (chosen and rejected exchanged), 'random' (two random responses)."})

    def __post_init__(self) -> None:
        # The schema's limits (config_bounds.json), so that what the CLI accepted is accepted here;
        # first, so that a field is refused by the schema's own words before any rule combining fields.
        check_section("curate", self, "params")
        check_float("params.min_gap", self.min_gap, minimum=0.0)
        check_bool("params.drop_order_only", self.drop_order_only)
        check_bool("params.drop_repeated_objects", self.drop_repeated_objects)
        check_choice("params.path_norm", self.path_norm, PATH_NORMS)
        check_int("params.sample_size", self.sample_size, minimum=0)
        check_choice("params.repeated_sentences", self.repeated_sentences, REPEATED_SENTENCES)
        check_float("params.repeat_similarity", self.repeat_similarity, minimum=0.0, maximum=1.0)
        check_choice("params.pairing", self.pairing, PAIRINGS)


@dataclass
class CurateSpec(StepSpec):
    scored: Any = field(default=None, metadata={"help": "Paths of scored.jsonl files (all shards of reward)."})
    images_dir: str = field(default="", metadata={"help": "Folder of the images; pairs carry absolute image paths."})
    params: Any = field(default_factory=dict, metadata={"help": "The curate section of the config (CurateParams)."})
    ground_truth: str | None = field(default=None, metadata={"help": "Toy world scenes.jsonl: judge pairs against the truth."})

    def __post_init__(self) -> None:
        super().__post_init__()
        self.scored = check_paths("scored", self.scored)
        check_str("images_dir", self.images_dir)
        self.params = from_dict(CurateParams, self.params, "params")
        if self.ground_truth is not None:
            check_str("ground_truth", self.ground_truth)


def _conversation(instruction: str, answer: str) -> list[dict[str, str]]:
    return [{"from": "human", "value": instruction}, {"from": "gpt", "value": answer}]


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def curate(records: list[dict[str, Any]], spec: CurateSpec, progress: Progress) -> tuple[list[dict], dict[str, Any]]:
    params = spec.params
    judge = scenes = None
    if spec.ground_truth is not None:
        from ..toyworld import judge  # lazily: only toy-world runs have a ground truth

        scenes = judge.load_scenes(require_file(spec.ground_truth, "ground_truth"))
    # Repeats by similarity need the reward step's echoes; off (1) or unused ('score'), they are never read.
    similarity = params.repeat_similarity if params.repeated_sentences == "worst" else 1.0
    if similarity < 1.0 and any("echo" not in n for r in records for n in r["nodes"][1:]):
        raise SpecError("scored", spec.scored, "scored.jsonl files whose nodes carry 'echo' (a reward step of "
                        "this version writes it; params.repeat_similarity below 1 reads it): re-run reward")
    pairs, kept = [], []
    dropped = dict.fromkeys(DROP_REASONS, 0)
    for record in records:
        progress.advance(1)
        mode = record.get("calibration", "rank")
        paths = complete_paths(record["nodes"], mode, params.path_norm, params.repeated_sentences, similarity)
        pair = choose_pair(paths)
        if pair is None:
            has_path = any(n["final"] and n["dropped"] is None and n["calibrated"] is not None for n in record["nodes"])
            dropped["identical" if has_path else "no_final_path"] += 1
            continue
        chosen, rejected = pair
        gap = chosen.score - rejected.score
        reason = None
        if params.min_gap > 0 and gap < params.min_gap:
            reason = "min_gap"
        elif params.drop_order_only and order_only(chosen, rejected):
            reason = "order_only"
        elif params.drop_repeated_objects and repeats_itself(chosen):
            reason = "repeated_objects"
        if reason:
            dropped[reason] += 1
            continue
        chosen, rejected = control_pair(paths, pair, params.pairing, f"{spec.seed}:{record['id']}")
        gap = chosen.score - rejected.score
        image = str(resolve_image(spec.images_dir, record["image"]))
        pairs.append({
            "id": record["id"], "image": image,
            "conversations": _conversation(record["input"], chosen.text),
            "rejected_conversations": _conversation(record["input"], rejected.text),
            "chosen_score": chosen.score, "rejected_score": rejected.score, "gap": gap,
        })
        kept.append((record, chosen, rejected, gap))

    stats: dict[str, Any] = {"prompts": len(records), "pairs": len(pairs),
                             **{f"dropped_{reason}": count for reason, count in dropped.items()}}
    if kept:
        gaps = [gap for *_, gap in kept]
        mean = lambda xs: statistics.fmean(xs) if xs else 0.0  # noqa: E731
        stats.update({
            "gap_mean": mean(gaps), "gap_p10": _quantile(gaps, 0.1), "gap_p50": _quantile(gaps, 0.5),
            "gap_p90": _quantile(gaps, 0.9),
            "chosen_len_mean": mean([len(c.text.split()) for _, c, _, _ in kept]),
            "rejected_len_mean": mean([len(r.text.split()) for _, _, r, _ in kept]),
            "chosen_sentences_mean": mean([len(c.sentences) for _, c, _, _ in kept]),
            "rejected_sentences_mean": mean([len(r.sentences) for _, _, r, _ in kept]),
            "chosen_clip_mean": mean([x for _, c, _, _ in kept for x in c.clips]),
            "rejected_clip_mean": mean([x for _, _, r, _ in kept for x in r.clips]),
            "order_only_share": mean([float(order_only(c, r)) for _, c, r, _ in kept]),
            "chosen_repeats_share": mean([float(repeats_itself(c)) for _, c, _, _ in kept]),
        })
    if scenes is not None:
        verdicts, chosen_h, rejected_h = [], [], []
        for record, chosen, rejected, _ in kept:
            scene = scenes.get(record["image"])
            if scene is None:
                continue
            verdicts.append(judge.compare_pair(scene, chosen.text, rejected.text))
            chosen_h.append(len(judge.judge_response(scene, chosen.text).hallucinated))
            rejected_h.append(len(judge.judge_response(scene, rejected.text).hallucinated))
        stats["gt_pairs"] = len(verdicts)
        for verdict in ("better", "equal", "worse"):
            stats[f"gt_{verdict}"] = verdicts.count(verdict) / len(verdicts) if verdicts else 0.0
        stats["gt_chosen_hallucinated_mean"] = statistics.fmean(chosen_h) if chosen_h else 0.0
        stats["gt_rejected_hallucinated_mean"] = statistics.fmean(rejected_h) if rejected_h else 0.0
    return pairs, stats


def run(raw_spec: dict[str, Any]) -> dict[str, Any]:
    spec, done = open_step(CurateSpec, raw_spec, STEP, torch=False, resume=False)
    if done is not None:
        return done
    records = read_jsonl(spec.scored, "scored file")
    ids = [str(r["id"]) for r in records]
    if len(set(ids)) != len(ids):
        log("curate: a prompt id appears in several scored files; the first one is used")
        seen: set[str] = set()
        records = [r for r in records if not (str(r["id"]) in seen or seen.add(str(r["id"])))]
    progress = Progress(STEP, total=len(records), unit="trees")
    progress.start()
    pairs, stats = curate(records, spec, progress)
    out = Path(spec.out_dir)
    atomic_write_text(out / "pairs.jsonl", "".join(json.dumps(p, sort_keys=True) + "\n" for p in pairs))
    atomic_write_text(out / "pairs_sample.jsonl",
                      "".join(json.dumps(p, sort_keys=True) + "\n" for p in pairs[:spec.params.sample_size]))
    atomic_write_json(out / "stats.json", stats)
    return write_manifest(out, step=STEP, spec=raw_spec, files=["pairs.jsonl", "pairs_sample.jsonl", "stats.json"],
                          items_total=len(records), items_reused=0, items_computed=len(records), stats=stats)
