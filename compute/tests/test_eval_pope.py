"""POPE: metrics of the fixture computed by hand from LLaVA's eval_pope.py rules."""

import json
from pathlib import Path

import pytest

from csr_compute.evaluation.answers import match_answers, read_answers
from csr_compute.evaluation.datafiles import DataError
from csr_compute.evaluation.registry import get_benchmark, load_dataset
from csr_compute.evaluation.scorers.pope import parse_yes_no
from csr_compute.evaluation.scoring import score

FIXTURE = Path(__file__).parent / "fixtures" / "eval" / "pope"


def score_pope(data_dir: Path, answers_path: Path, **kwargs) -> dict:
    benchmark = get_benchmark("pope")
    dataset = load_dataset(benchmark, data_dir, **kwargs)
    return score(benchmark, dataset, match_answers(dataset, read_answers(answers_path)))


@pytest.mark.parametrize("text, expected", [
    ("Yes, there is a dog.", "yes"),
    ("No.", "no"),
    ("no, there is not.", "no"),
    ("There is a bus. No wait.", "yes"),  # only the first sentence counts
    ("I cannot tell", "yes"),  # neither yes nor no: LLaVA counts it as yes
    ("NO", "yes"),  # only "No", "no" and "not" are negative words
    ("not sure", "no"),
    ("", "yes"),
])
def test_parse_follows_llava(text, expected):
    assert parse_yes_no(text) == expected


def test_metrics_per_split_match_hand_computation():
    m = score_pope(FIXTURE, FIXTURE / "answers.jsonl")
    # random: TP 2 (q1, q3), FP 2 (q4 "There is a bus.", q6 "NO"), TN 1 (q2), FN 1 (q5 missing -> wrong)
    assert (m["random/TP"], m["random/FP"], m["random/TN"], m["random/FN"]) == (2, 2, 1, 1)
    assert m["random/accuracy"] == pytest.approx(50.0)
    assert m["random/precision"] == pytest.approx(50.0)
    assert m["random/recall"] == pytest.approx(200 / 3)
    assert m["random/f1"] == pytest.approx(2 * 50 * (200 / 3) / (50 + 200 / 3))
    assert m["random/yes_ratio"] == pytest.approx(400 / 6)
    assert m["random/missing_answers"] == 1
    # popular: TP 2 (q1, q3 empty text -> yes), FP 1 (q4 "Maybe"), TN 1
    assert m["popular/accuracy"] == pytest.approx(75.0)
    assert m["popular/precision"] == pytest.approx(200 / 3)
    assert m["popular/recall"] == pytest.approx(100.0)
    assert m["popular/f1"] == pytest.approx(80.0)
    assert m["popular/yes_ratio"] == pytest.approx(75.0)
    # adversarial: nothing predicted yes -> precision, recall, F1 are 0 (the official script would divide by 0)
    assert m["adversarial/accuracy"] == pytest.approx(50.0)
    assert (m["adversarial/precision"], m["adversarial/recall"], m["adversarial/f1"]) == (0.0, 0.0, 0.0)
    assert m["adversarial/yes_ratio"] == 0.0
    assert m["mean/accuracy"] == pytest.approx((50 + 75 + 50) / 3)
    assert (m["questions"], m["missing_answers"]) == (14, 1)


def test_one_split(tmp_path):
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(line for line in (FIXTURE / "answers.jsonl").read_text().splitlines(keepends=True)
                               if "popular/" in line))
    m = score_pope(FIXTURE, answers, split="popular")
    assert m["questions"] == 4 and "random/accuracy" not in m
    assert m["popular/accuracy"] == pytest.approx(75.0)


def test_duplicate_answer_is_an_error(tmp_path):
    answers = tmp_path / "answers.jsonl"
    answers.write_text('{"question_id": "random/1", "text": "yes"}\n{"question_id": "random/1", "text": "no"}\n')
    with pytest.raises(DataError, match=r"line 2: duplicate answer for question id 'random/1' \(first at line 1\)"):
        score_pope(FIXTURE, answers)


def test_answer_for_an_unknown_question_is_an_error(tmp_path):
    answers = tmp_path / "answers.jsonl"
    answers.write_text('{"question_id": "random/1", "text": "yes"}\n{"question_id": 7, "text": "no"}\n')
    with pytest.raises(DataError, match=r"answers.jsonl line 2: question id '7' is not a question"):
        score_pope(FIXTURE, answers)


def test_bad_label_names_file_record_and_value(tmp_path):
    for name in ("random", "popular", "adversarial"):
        (tmp_path / f"coco_pope_{name}.json").write_text((FIXTURE / f"coco_pope_{name}.json").read_text())
    lines = (tmp_path / "coco_pope_popular.json").read_text().splitlines()
    lines[2] = json.dumps({**json.loads(lines[2]), "label": "maybe"})
    (tmp_path / "coco_pope_popular.json").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"coco_pope_popular.json record 3: field 'label': expected \"yes\" or \"no\", "
                                        r"got \"maybe\""):
        load_dataset(get_benchmark("pope"), tmp_path)


def test_duplicate_question_in_data_and_missing_file(tmp_path):
    (tmp_path / "coco_pope_random.json").write_text(
        '{"question_id": 1, "image": "a.jpg", "text": "Is there a dog in the image?", "label": "yes"}\n' * 2)
    with pytest.raises(DataError, match=r"record 2: duplicate question id 'random/1'"):
        load_dataset(get_benchmark("pope"), tmp_path, split="random")
    with pytest.raises(DataError, match=r"coco_pope_popular.json' not found"):
        load_dataset(get_benchmark("pope"), tmp_path, split="popular")


def test_prompt_uses_the_llava_short_answer_suffix():
    benchmark = get_benchmark("pope")
    item = load_dataset(benchmark, FIXTURE, split="random").items[0]
    assert item.question_id == "random/1"
    assert benchmark.prompt(item) == "Is there a dog in the image?\nAnswer the question using a single word or phrase."
