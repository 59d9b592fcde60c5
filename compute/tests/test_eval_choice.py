"""Multiple-choice and short-answer benchmarks: ScienceQA-IMG, SEED-Bench (image) and GQA."""

from pathlib import Path

import pytest

from csr_compute.contract import SpecError
from csr_compute.evaluation.answers import match_answers, read_answers
from csr_compute.evaluation.datafiles import DataError
from csr_compute.evaluation.registry import get_benchmark, load_dataset
from csr_compute.evaluation.scorers.choice import parse_scienceqa
from csr_compute.evaluation.scoring import score

FIXTURES = Path(__file__).parent / "fixtures" / "eval"


def score_fixture(name: str, folder: str) -> dict:
    benchmark = get_benchmark(name)
    dataset = load_dataset(benchmark, FIXTURES / folder)
    return score(benchmark, dataset, match_answers(dataset, read_answers(FIXTURES / folder / "answers.jsonl")))


@pytest.mark.parametrize("text, letter", [
    ("B", "B"), ("C. blue", "C"), ("C.blue", None), ("The answer is A.", "A"),
    ("The answer is A. The answer is B.", None), ("the answer is B.", None), ("b", None),
])
def test_scienceqa_parse(text, letter):
    assert parse_scienceqa(text) == letter


def test_scienceqa_img_accuracy():
    m = score_fixture("scienceqa_img", "scienceqa")
    # 6 problems with an image (problem 3 has none and is not asked): 1 "B" right, 2 "C. blue" right,
    # 4 "The answer is A." right, 5 "The answer is C." beyond its 2 choices, 6 missing, 7 two "The answer is".
    # eval_science_qa.py gives the missing 6 the prompt "Unknown", so it is not "multimodal": 3 of 5.
    assert m["img_accuracy"] == pytest.approx(60.0)
    assert (m["questions"], m["missing_answers"]) == (6, 1)
    assert "accuracy" not in m  # the overall accuracy needs the problems without an image too


def test_scienceqa_missing_answer_as_wrong_is_an_option():
    benchmark = get_benchmark("scienceqa_img")
    dataset = load_dataset(benchmark, FIXTURES / "scienceqa", options={"missing": "wrong"})
    m = score(benchmark, dataset, match_answers(dataset, read_answers(FIXTURES / "scienceqa" / "answers.jsonl")))
    assert m["img_accuracy"] == pytest.approx(50.0)  # 3 of 6


def test_scienceqa_all_questions_give_the_overall_accuracy(tmp_path):
    # A LLaVA answer file covers every test problem, the one without an image (3) too.
    answers = tmp_path / "answers.jsonl"
    answers.write_text((FIXTURES / "scienceqa" / "answers.jsonl").read_text()
                       + '{"question_id": "3", "prompt": "Which one?", "text": "B"}\n')
    benchmark = get_benchmark("scienceqa_img")
    dataset = load_dataset(benchmark, FIXTURES / "scienceqa", options={"questions": "all"})
    m = score(benchmark, dataset, match_answers(dataset, read_answers(answers)))
    # Total: 1, 2, 3, 4 right of the 7 problems (the missing 6 is a wrong answer there); IMG: 3 of 5.
    assert m["accuracy"] == pytest.approx(400 / 7)
    assert m["img_accuracy"] == pytest.approx(60.0)
    assert m["questions"] == 7
    with pytest.raises(SpecError, match=r"benchmark.questions: expected img"):
        load_dataset(benchmark, FIXTURES / "scienceqa", options={"questions": "text"})


def test_scienceqa_prompt_and_image_path():
    benchmark = get_benchmark("scienceqa_img")
    items = {item.question_id: item for item in load_dataset(benchmark, FIXTURES / "scienceqa").items}
    assert "3" not in items
    assert benchmark.prompt(items["2"]) == ("Context: Look at the colors.\nWhich color is the sky?\nA. red\nB. green\n"
                                           "C. blue\nAnswer with the option's letter from the given choices directly.")
    assert benchmark.prompt(items["1"]).startswith("Which animal is a dog?\nA. cat\nB. dog\n")
    assert items["1"].image == "test/1/image.png"


def test_scienceqa_split_naming_an_unknown_problem(tmp_path):
    (tmp_path / "problems.json").write_text((FIXTURES / "scienceqa" / "problems.json").read_text())
    (tmp_path / "pid_splits.json").write_text('{"test": ["1", "99"]}')
    with pytest.raises(DataError, match=r"pid_splits.json test\[1\]: problem id '99' is not in problems.json"):
        load_dataset(get_benchmark("scienceqa_img"), tmp_path)


def test_seed_image_accuracy_is_exact_letter_match():
    m = score_fixture("seedbench", "seedbench")
    # image questions 101 "A" right, 102 "C." wrong (LLaVA compares the text with the letter), 103 "b" wrong,
    # 105 missing; the video question 104 is not asked
    assert m["image_accuracy"] == pytest.approx(25.0)
    assert m["dimension/Scene_Understanding"] == pytest.approx(50.0)
    assert m["dimension/Instance_Identity"] == pytest.approx(0.0)
    assert m["questions"] == 4


def test_seed_all_questions_as_llava_prints_them(tmp_path):
    answers = tmp_path / "answers.jsonl"
    answers.write_text((FIXTURES / "seedbench" / "answers.jsonl").read_text()
                       + '{"question_id": "104", "text": "A"}\n')
    benchmark = get_benchmark("seedbench")
    dataset = load_dataset(benchmark, FIXTURES / "seedbench", options={"questions": "all"})
    m = score(benchmark, dataset, match_answers(dataset, read_answers(answers)))
    # 101 right, 102 "C." wrong, 103 "b" wrong, video 104 right, 105 missing (wrong): 2 of 5
    assert (m["all_accuracy"], m["image_accuracy"], m["video_accuracy"]) == (40.0, 25.0, 100.0)
    assert m["dimension/Scene_Understanding"] == pytest.approx(200 / 3)  # 101, 102, 104
    assert m["questions"] == 5
    assert "all_accuracy" not in score_fixture("seedbench", "seedbench")


def test_seed_prompt_lists_options():
    benchmark = get_benchmark("seedbench")
    item = load_dataset(benchmark, FIXTURES / "seedbench").items[0]
    assert benchmark.prompt(item) == ("Question 101?\nA. one\nB. two\nC. three\nD. four\n"
                                      "Answer with the option's letter from the given choices directly.")
    assert item.image == "101.jpg"


def test_gqa_exact_match_after_llava_normalisation():
    m = score_fixture("gqa", "gqa")
    # q1 "Red." -> "red" right (open); q2 "Yes" -> "yes" right; q3 "The left one" wrong; q5 missing; q4 unbalanced
    assert m["accuracy"] == pytest.approx(50.0)
    assert m["open"] == pytest.approx(100.0)
    assert m["binary"] == pytest.approx(100 / 3)
    assert m["questions"] == 4


def gqa_question(question, answer, structural, semantic, detailed, balanced, program, group=None, entailed=()):
    return {"imageId": "n1", "question": question, "answer": answer, "isBalanced": balanced,
            "types": {"structural": structural, "semantic": semantic, "detailed": detailed},
            "semantic": [{"operation": o, "argument": a} for o, a in program],
            "groups": {"global": group, "local": None}, "entailed": list(entailed)}


def test_gqa_metrics_of_eval_py(tmp_path):
    import json

    questions = {
        "b1": gqa_question("What color is the car?", "red", "query", "attr", "colorQuery", True,
                           [("select", "car (1)"), ("query", "color")], "color", ["u1", "b1"]),
        "b2": gqa_question("Is there a dog?", "yes", "verify", "obj", "existC", True,
                           [("select", "dog"), ("exist", "?")], None, ["u2"]),
        "b3": gqa_question("Which color is the ball, red or blue?", "blue", "choose", "attr", "twoCommon", True,
                           [("select", "ball"), ("choose color", "red|blue")], "color"),
        "u1": gqa_question("Is the car red?", "yes", "verify", "attr", "verifyAttr", False, [("select", "car")]),
        "u2": gqa_question("Is there an animal?", "yes", "verify", "obj", "existC", False, [("exist", "?")]),
    }
    (tmp_path / "testdev_all_questions.json").write_text(json.dumps(questions))
    (tmp_path / "testdev_balanced_questions.json").write_text(
        json.dumps({k: v for k, v in questions.items() if v["isBalanced"]}))
    (tmp_path / "testdev_choices.json").write_text(json.dumps({
        "b1": {"valid": ["red", "blue", "green"], "plausible": ["blue"]},
        "b2": {"valid": ["yes", "no"], "plausible": ["yes", "no"]},
        "b3": {"valid": ["red", "blue"], "plausible": ["red", "blue"]}}))
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"question_id": q, "text": t}) + "\n" for q, t in
                               [("b1", "Red."), ("b2", "Yes"), ("b3", "Red"), ("u1", "No"), ("u2", "yes")]))
    benchmark = get_benchmark("gqa")
    dataset = load_dataset(benchmark, tmp_path, options={"questions": "all"})
    m = score(benchmark, dataset, match_answers(dataset, read_answers(answers)))
    # balanced: b1 right, b2 right, b3 "red" wrong; unbalanced u1 wrong, u2 right
    assert (m["accuracy"], m["open"], m["binary"]) == (pytest.approx(200 / 3), 100.0, 50.0)
    # b1 right, entails u1 (itself left out): 0; b2 right, entails u2: 1; b3 wrong: not counted
    assert m["consistency"] == 50.0
    # b1 red valid, not plausible; b2 both; b3 "twoCommon" -> the set is color/material/shape: neither
    assert (m["validity"], m["plausibility"]) == (pytest.approx(200 / 3), pytest.approx(100 / 3))
    # group color: gold red 1, blue 1; predicted red 2 -> (2-1)^2/1 + (0-1)^2/1 = 2, weight 2: 2.0 / 100
    assert m["distribution"] == pytest.approx(0.02)
    assert (m["structural/query"], m["structural/verify"], m["structural/choose"]) == (100.0, 100.0, 0.0)
    assert (m["semantic/attr"], m["semantic/obj"]) == (50.0, 100.0)
    assert (m["words/5"], m["words/4"], m["words/8"]) == (100.0, 100.0, 0.0)
    assert (m["steps/1"], m["steps/2"]) == (100.0, 50.0)  # "exist: ?" is no step
    assert m["questions"] == 5
    # The default: balanced questions only, no consistency; the choices file is still found.
    dataset = load_dataset(benchmark, tmp_path)
    answers.write_text("".join(json.dumps({"question_id": q, "text": t}) + "\n" for q, t in
                               [("b1", "Red."), ("b2", "Yes"), ("b3", "Red")]))
    m = score(benchmark, dataset, match_answers(dataset, read_answers(answers)))
    assert "consistency" not in m and m["validity"] == pytest.approx(200 / 3) and m["questions"] == 3


def test_gqa_field_errors_name_the_question(tmp_path):
    (tmp_path / "testdev_balanced_questions.json").write_text(
        '{"q1": {"imageId": "n1", "question": "What?", "answer": "red", "isBalanced": "yes", "types": {}}}')
    with pytest.raises(DataError, match=r"question 'q1': field 'isBalanced': expected true or false, got \"yes\""):
        load_dataset(get_benchmark("gqa"), tmp_path)
