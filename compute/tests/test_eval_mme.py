"""MME: acc, acc+ and the perception / cognition totals of the official calculation.py, on a release-layout fixture."""

from pathlib import Path

import pytest

from csr_compute.evaluation.answers import match_answers, read_answers
from csr_compute.contract import SpecError
from csr_compute.evaluation.datafiles import DataError
from csr_compute.evaluation.registry import get_benchmark, load_dataset
from csr_compute.evaluation.scorers.mme import COGNITION, PERCEPTION, parse_yes_no_other
from csr_compute.evaluation.scoring import score

SPLIT_LAYOUT = {"artwork", "celebrity", "landmark", "posters", "scene"}  # images/ + questions_answers_YN/


def make_release(root: Path, images_per_subtask: dict[str, int]) -> None:
    """The layout of MME_Benchmark_release_version: per image a .txt of two "question<TAB>Yes|No" lines."""
    for subtask in PERCEPTION + COGNITION:
        folder = root / subtask
        image_dir, qa_dir = ((folder / "images", folder / "questions_answers_YN") if subtask in SPLIT_LAYOUT
                             else (folder, folder))
        image_dir.mkdir(parents=True, exist_ok=True)
        qa_dir.mkdir(parents=True, exist_ok=True)
        for k in range(images_per_subtask.get(subtask, 1)):
            (image_dir / f"{k:04d}.jpg").write_bytes(b"\xff\xd8\xff")
            (qa_dir / f"{k:04d}.txt").write_text(f"Is this {subtask} {k}? Please answer yes or no.\tYes\n"
                                                 f"Is this not {subtask} {k}? Please answer yes or no.\tNo\n")


def answers_file(path: Path, texts: dict[str, str | None]) -> Path:
    import json

    path.write_text("".join(json.dumps({"question_id": qid, "text": text}) + "\n"
                            for qid, text in texts.items() if text is not None))
    return path


def official_parse(pred_ans: str) -> str:
    """BradyFU/Awesome-Multimodal-Large-Language-Models (Evaluation branch) eval_tool/calculation.py:
    ``pred_ans = pred_ans.lower()`` then ``parse_pred_ans``, line by line."""
    pred_ans = pred_ans.lower()
    if pred_ans in ["yes", "no"]:
        pred_label = pred_ans
    else:
        prefix_pred_ans = pred_ans[:4]
        if "yes" in prefix_pred_ans:
            pred_label = "yes"
        elif "no" in prefix_pred_ans:
            pred_label = "no"
        else:
            pred_label = "other"
    return pred_label


EDGE_CASES = ["Yes", "No.", " yes", "   yes", "...yes", "y.e.s", "Y.E.S.", " no", "Not really", "yesterday",
              "There are two.", "N", "y", "n.", "Maybe", "", "NO", "no\n", "\nyes", "The answer is yes.", "nope"]


@pytest.mark.parametrize("text, label", [
    ("Yes", "yes"), ("No.", "no"), ("Not really", "no"), ("yesterday", "yes"), (" no", "no"),
    # calculation.py only lower-cases: a blank or a period before "yes" hides it from the first four characters
    (" yes", "yes"), ("   yes", "other"), ("...yes", "other"), ("y.e.s", "other"),
    ("There are two.", "other"), ("N", "other"), ("Maybe", "other"),
])
def test_parse(text, label):
    assert parse_yes_no_other(text) == label


@pytest.mark.parametrize("text, label", [
    ("   yes", "yes"), ("...yes", "yes"), ("y.e.s", "yes"), ("N", "no"), ("y.", "yes"), ("x", "other"),
])
def test_lmms_eval_rule_is_an_option(text, label):
    assert parse_yes_no_other(text, "lmms_eval") == label


def test_default_parse_equals_calculation_py_on_edge_cases():
    for text in EDGE_CASES:
        assert parse_yes_no_other(text) == official_parse(text), text


def test_parse_option_reaches_the_scorer(tmp_path):
    make_release(tmp_path, {})
    benchmark = get_benchmark("mme")
    answers = {}
    for rule, expected in (("official", 50.0), ("lmms_eval", 100.0)):
        dataset = load_dataset(benchmark, tmp_path, split="color", options={"parse": rule})
        answers = {item.question_id: ("...yes" if item.truth["label"] == "yes" else "No") for item in dataset.items}
        assert score(benchmark, dataset, answers)["color/acc"] == expected, rule
    with pytest.raises(SpecError, match=r"benchmark.parse: expected official .* or lmms_eval"):
        load_dataset(benchmark, tmp_path, split="color", options={"parse": "loose"})


def test_scores_and_totals(tmp_path):
    make_release(tmp_path / "MME", {"existence": 2})
    benchmark = get_benchmark("mme")
    dataset = load_dataset(benchmark, tmp_path / "MME")
    assert len(dataset.items) == 30
    right = {}
    for item in dataset.items:
        right[item.question_id] = "Yes" if item.truth["label"] == "yes" else "No"
    answers = {**right,
               "existence/0001.jpg/0": "yes.", "existence/0001.jpg/1": "Not really",  # still right
               "count/0000.jpg/0": "There are two.",  # "other": wrong
               "position/0000.jpg/1": None,  # missing: wrong
               "color/0000.jpg/1": "Yes",  # wrong label
               "numerical_calculation/0000.jpg/0": "yesterday",  # first four characters contain "yes"
               "text_translation/0000.jpg/1": "N"}  # a bare letter is "other" in the official tool
    m = score(benchmark, dataset, match_answers(dataset, read_answers(answers_file(tmp_path / "a.jsonl", answers))))
    assert (m["existence/acc"], m["existence/acc_plus"], m["existence/score"]) == (100.0, 100.0, 200.0)
    for subtask in ("count", "position", "color", "text_translation"):
        assert (m[f"{subtask}/acc"], m[f"{subtask}/acc_plus"], m[f"{subtask}/score"]) == (50.0, 0.0, 50.0), subtask
    assert m["perception"] == pytest.approx(200 + 3 * 50 + 6 * 200)
    assert m["cognition"] == pytest.approx(3 * 200 + 50)
    assert m["missing_answers"] == 1


def test_prompt_replaces_the_yes_no_instruction(tmp_path):
    make_release(tmp_path, {})
    benchmark = get_benchmark("mme")
    item = load_dataset(benchmark, tmp_path, split="OCR").items[0]
    assert item.question_id == "OCR/0000.jpg/0"
    assert benchmark.prompt(item) == "Is this OCR 0?\nAnswer the question using a single word or phrase."


def test_one_subtask_has_no_total(tmp_path):
    make_release(tmp_path, {})
    benchmark = get_benchmark("mme")
    dataset = load_dataset(benchmark, tmp_path, split="color")
    m = score(benchmark, dataset, {item.question_id: "Yes" for item in dataset.items})
    assert m["color/acc"] == 50.0 and "perception" not in m


def test_malformed_question_files(tmp_path):
    make_release(tmp_path, {})
    txt = tmp_path / "count" / "0000.txt"
    txt.write_text("Is there one?\tYes\n")
    with pytest.raises(DataError, match=r"count/0000.txt: expected 2 lines"):
        load_dataset(get_benchmark("mme"), tmp_path, split="count")
    txt.write_text("Is there one?\tYes\nIs there two?\tMaybe\n")
    with pytest.raises(DataError, match=r"count/0000.txt line 2: expected 'question<TAB>Yes' or 'question<TAB>No'"):
        load_dataset(get_benchmark("mme"), tmp_path, split="count")
    (tmp_path / "count" / "0000.jpg").unlink()
    with pytest.raises(DataError, match=r"0000.txt: no image 0000.jpg/.png"):
        load_dataset(get_benchmark("mme"), tmp_path, split="count")
