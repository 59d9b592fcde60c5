"""VizWiz VQA accuracy with EvalAI normalisation, including unanswerable questions."""

from pathlib import Path

import pytest

from csr_compute.contract import SpecError
from csr_compute.evaluation.answers import match_answers, read_answers
from csr_compute.evaluation.datafiles import DataError
from csr_compute.evaluation.registry import get_benchmark, load_dataset
from csr_compute.evaluation.scorers.vqa import normalize_answer, vqa_accuracy
from csr_compute.evaluation.scoring import score

FIXTURE = Path(__file__).parent / "fixtures" / "eval" / "vizwiz"


@pytest.mark.parametrize("raw, normal", [
    ("Soup.", "soup"), ("Unanswerable", "unanswerable"), ("Two", "2"), ("none", "0"), ("It's a dog!", "it 's dog"),
    ("dont know", "don't know"), ("3.5 inches", "3.5 inches"), ("The red/blue can", "red blue can"),
    ("yes, it is", "yes it is"),
])
def test_normalisation(raw, normal):
    assert normalize_answer(raw) == normal


def test_leave_one_out_accuracy():
    humans = ["soup", "soup"] + ["tomato soup"] * 5 + ["can", "can", "unanswerable"]
    assert vqa_accuracy("soup", humans) == pytest.approx((2 * (1 / 3) + 8 * (2 / 3)) / 10)
    assert vqa_accuracy("tomato soup", humans) == pytest.approx(1.0)
    assert vqa_accuracy(None, humans) == 0.0


def test_fixture_accuracy_and_answer_types():
    benchmark = get_benchmark("vizwiz")
    dataset = load_dataset(benchmark, FIXTURE)
    m = score(benchmark, dataset, match_answers(dataset, read_answers(FIXTURE / "answers.jsonl")))
    # "Soup." 0.6; "Unanswerable" vs 8 x unanswerable 1.0; "Two" -> "2" vs {two, two, 2, 7 x 3} 0.9; missing 0
    assert m["accuracy"] == pytest.approx(62.5)
    assert m["answer_type/other"] == pytest.approx(60.0)
    assert m["answer_type/unanswerable"] == pytest.approx(100.0)
    assert m["answer_type/number"] == pytest.approx(90.0)
    assert m["answer_type/yes_no"] == 0.0
    assert m["missing_answers"] == 1


def test_prompt_allows_unanswerable():
    benchmark = get_benchmark("vizwiz")
    item = load_dataset(benchmark, FIXTURE).items[0]
    assert item.question_id == "VizWiz_val_00000000"
    assert benchmark.prompt(item) == ("What is this?\nWhen the provided information is insufficient, respond with "
                                      "'Unanswerable'.\nAnswer the question using a single word or phrase.")


def test_questions_without_answers_say_why(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "val.json").write_text('[{"image": "VizWiz_val_00000000.jpg", "question": "What?"}]')
    with pytest.raises(DataError, match=r"val.json \[0\]: no human answers; the val split cannot be scored here"):
        load_dataset(get_benchmark("vizwiz"), tmp_path)
    with pytest.raises(SpecError, match=r"benchmark.split: expected one of \['val', 'train'\]"):
        load_dataset(get_benchmark("vizwiz"), tmp_path, split="test")  # test answers are private to EvalAI
