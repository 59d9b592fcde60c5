"""MMBench CircularEval on a TSV fixture in the official layout (rotated rows at index + k * 1e6)."""

import random
from pathlib import Path

import pytest

from csr_compute.evaluation.answers import match_answers, read_answers
from csr_compute.contract import SpecError
from csr_compute.evaluation.datafiles import DataError
from csr_compute.evaluation.registry import get_benchmark, load_dataset
from csr_compute.evaluation.scorers.mmbench import Row, circular_eval, infer_letter, infer_option, matching_prompt
from csr_compute.evaluation.scoring import score

FIXTURE = Path(__file__).parent / "fixtures" / "eval" / "mmbench"


@pytest.mark.parametrize("answer, letter", [
    ("B", "B"), ("A.", "A"), ("(C)", "C"), ("The answer is D", "D"), ("Answer: B.", "B"),
    ("I think it is A", None),  # "A" in a longer answer may be the article: not taken
    ("A cat", "A"), ("B, because", "B"), ("C or D", None),
])
def test_option_letter_rules(answer, letter):
    assert infer_option(answer) == letter


def test_option_text_rule():
    options = {"A": "fish", "B": "cat", "C": "dog", "D": "bird"}
    assert infer_letter("a dog", options) == "C"
    assert infer_letter("a dog and a cat", options) is None  # two options named


def test_fixture_circular_accuracy():
    benchmark = get_benchmark("mmbench")
    dataset = load_dataset(benchmark, FIXTURE)
    m = score(benchmark, dataset, match_answers(dataset, read_answers(FIXTURE / "answers.jsonl")))
    # Q0: all four rotations right (letters "B", "A.", "The answer is D", option text "dog"); Q1: third
    # rotation wrong; Q2: "I think it is A" is unparseable -> first draw of Random(2680) over ABCDE is E (wrong);
    # Q3: rotation 1000003 has no answer: an empty prediction, so it takes the second draw, 3 -> "D" (wrong, "A").
    draws = random.Random(2680)
    assert (draws.randint(0, 4), draws.randint(0, 4)) == (4, 3)
    assert m["circular_accuracy"] == pytest.approx(25.0)
    assert (m["category/animal"], m["category/color"], m["category/time"], m["category/count"]) == (100.0, 0.0, 0.0, 0.0)
    assert (m["unparsed_rows"], m["random_choice_rows"], m["judge_matched_rows"]) == (2, 2, 0)
    assert (m["circular_questions"], m["questions"], m["missing_answers"]) == (4, 11, 1)
    # The earlier rule, kept as an option: the missing row makes Q3 wrong without a draw.
    dataset = load_dataset(benchmark, FIXTURE, options={"missing": "wrong"})
    m = score(benchmark, dataset, match_answers(dataset, read_answers(FIXTURE / "answers.jsonl")))
    assert (m["circular_accuracy"], m["unparsed_rows"], m["random_choice_rows"]) == (25.0, 1, 1)
    with pytest.raises(SpecError, match=r"benchmark.missing: expected official \(the default\) or wrong"):
        load_dataset(benchmark, FIXTURE, options={"missing": "skip"})


def test_missing_answer_takes_its_random_draw_as_the_official_code():
    # Official: an empty prediction gets draw 1 (4 -> "E", wrong), and the unparsed Q1 draw 2 (3 -> "D", right).
    # Marked wrong without a draw instead, Q1 would get draw 1 ("E") and be wrong: the sequence shifts.
    def groups():
        return {0: [Row(0, "A", {"A": "x", "B": "y"}, ["x", "y"], "q", None)],
                1: [Row(1, "D", {"A": "x", "B": "y", "C": "z", "D": "w"}, ["x", "y", "z", "w"], "q", "gibberish")]}

    assert circular_eval(groups(), num_option_columns=4, ask_judge=None).hits == {0: False, 1: True}
    assert circular_eval(groups(), num_option_columns=4, ask_judge=None, missing="wrong").hits == {0: False, 1: False}


def test_early_wrong_row_spares_the_random_draw():
    # A question whose parsed rows already disagree is wrong before any unparsed row is resolved, so the
    # random sequence of the next question is the official one.
    groups = {
        0: [Row(0, "A", {"A": "x", "B": "y"}, ["x", "y"], "q", "gibberish"),
            Row(1_000_000, "B", {"A": "y", "B": "x"}, ["y", "x"], "q", "A")],
        1: [Row(1, "A", {"A": "x", "B": "y"}, ["x", "y"], "q", "gibberish")],
    }
    result = circular_eval(groups, num_option_columns=4, ask_judge=None)
    assert result.hits == {0: False, 1: False}  # draw 4 -> "E"
    assert result.random_rows == 1


def test_judge_reply_is_parsed_with_the_same_rules():
    groups = {0: [Row(0, "B", {"A": "x", "B": "y"}, ["x", "y"], "Which one", "it's the second")]}
    prompts = []
    replies = iter(["I am not sure", "B"])

    def ask(prompt):
        prompts.append(prompt)
        return next(replies)

    result = circular_eval(groups, num_option_columns=4, ask_judge=ask)
    assert result.hits == {0: True} and result.judged_rows == 1 and result.random_rows == 0
    assert prompts[0] == matching_prompt("Which one", ["x", "y"], "it's the second")
    assert ("Question: Which one?\nOptions: There are several options: \nA. x\nB. y\n\nAnswer: it's the second"
            in prompts[0])


def test_prompt_has_hint_options_and_letter_instruction():
    benchmark = get_benchmark("mmbench")
    items = {item.question_id: item for item in load_dataset(benchmark, FIXTURE).items}
    assert benchmark.prompt(items["0"]) == ("Look closely.\nWhich animal is shown?\nA. cat\nB. dog\nC. bird\nD. fish\n"
                                           "Answer with the option's letter from the given choices directly.")
    assert benchmark.prompt(items["1"]).startswith("Which color is the ball?\nA. red\nB. green\nC. blue\nAnswer")


def test_bad_answer_letter_is_named(tmp_path):
    lines = (FIXTURE / "mmbench_dev_20230712.tsv").read_text().splitlines()
    cells = lines[3].split("\t")
    cells[7] = "Z"
    lines[3] = "\t".join(cells)
    (tmp_path / "mmbench_dev_20230712.tsv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"mmbench_dev_20230712.tsv line 4: field 'answer': expected one of "
                                        r"\['A', 'B', 'C', 'D'\], got 'Z'"):
        load_dataset(get_benchmark("mmbench"), tmp_path)
