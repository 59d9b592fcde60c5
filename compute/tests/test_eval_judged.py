"""MM-Vet and LLaVA-Bench: skipped without a judge; the official grading arithmetic on recorded judge replies."""

import json
from pathlib import Path

import pytest

from csr_compute.contract import RetryableError, SpecError
from csr_compute.evaluation.answers import match_answers, read_answers
from csr_compute.evaluation.judge import Judge
from csr_compute.evaluation.registry import get_benchmark, load_dataset
from csr_compute.evaluation.scorers.judged import (MMVET_PROMPT, llava_bench_content, llava_bench_parse,
                                                   llava_bench_relative, mmvet_grade, mmvet_metrics, mmvet_query)
from csr_compute.evaluation.scoring import score

FIXTURES = Path(__file__).parent / "fixtures" / "eval"


@pytest.mark.parametrize("name, folder", [("mmvet", "mmvet"), ("llava_wild", "llava_wild")])
def test_without_judge_the_benchmark_is_skipped_not_zero(name, folder):
    benchmark = get_benchmark(name)
    dataset = load_dataset(benchmark, FIXTURES / folder)
    m = score(benchmark, dataset, match_answers(dataset, read_answers(FIXTURES / folder / "answers.jsonl")))
    assert "judge" in m["skipped"] and "none is configured" in m["skipped"]
    assert set(m) == {"skipped", "questions", "missing_answers"}


def test_mmvet_query_is_the_official_table_row():
    query = mmvet_query("What is x in the equation?", "-1<AND>-5", "x = -1")
    assert query == MMVET_PROMPT + "\nWhat is x in the equation? | -1 <AND> -5 | x = -1 | "
    assert MMVET_PROMPT.startswith("Compare the ground truth and prediction from AI models")


def test_mmvet_grade_retries_like_the_official_grader():
    def replay(replies):
        asked = []

        def ask(prompt, temperature, attempt):
            asked.append((prompt.endswith("(digit): "), temperature, attempt))
            return replies[len(asked) - 1]
        return ask, asked

    ask, asked = replay(["0.5"])
    assert mmvet_grade("q", ask) == 0.5 and asked == [(False, 0.0, 0)]
    ask, asked = replay(["great", "1.0 because"])
    assert mmvet_grade("q", ask) == 1.0
    assert asked == [(False, 0.0, 0), (True, 0.0, 1)]  # the first retry still at temperature 0
    ask, asked = replay(["x", "1.5", "y", "z", "w", "0.9"])
    assert mmvet_grade("q", ask) == 0.0  # five retries without a readable score in [0, 1]: 0
    assert [t for _, t, _ in asked] == [0.0, 0.0, 0.5, 1.0, 1.5, 2.0]


def test_mmvet_totals_per_capability():
    m = mmvet_metrics([(["ocr", "math"], 0.5), (["rec"], 1.0), (["rec", "ocr"], 0.0)])
    assert m["total"] == pytest.approx(50.0)
    assert m["capability/ocr"] == pytest.approx(25.0)
    assert m["capability/math"] == pytest.approx(50.0)
    assert m["capability/rec"] == pytest.approx(50.0)


@pytest.mark.parametrize("review, pair", [
    ("8 9\nAssistant 2 is more detailed.", (8.0, 9.0)), ("7,6\n...", (7.0, 6.0)), ("8  9\n", (-1.0, -1.0)),
    ("7, 6", (-1.0, -1.0)),  # the comma becomes a space, leaving two: unreadable, as in the official script
    ("Scores: 8 9", (-1.0, -1.0)), ("eight nine", (-1.0, -1.0)),
])
def test_llava_bench_score_line(review, pair):
    assert llava_bench_parse(review) == pair


def test_llava_bench_relative_score_rounds_like_the_summary_script():
    m = llava_bench_relative([(8, 7), (9, 6), (10, 6)])
    # means 9.0 and 6.333 (rounded to 3 decimals): 6.333 / 9 * 100 = 70.37 -> 70.4
    assert m == {"relative_score": 70.4, "reference_score": 90.0, "model_score": 63.3}


def test_llava_bench_judge_message():
    rules = json.loads((Path(__file__).parents[1] / "csr_compute" / "evaluation" / "data" /
                        "llava_bench_rule.json").read_text())
    content = llava_bench_content("A man irons.", "What is unusual?", "Ironing on a taxi.", "He irons.",
                                  rules["llava_bench_complex"]["prompt"])
    assert content.startswith("[Context]\nA man irons.\n\n[Question]\nWhat is unusual?\n\n[Assistant 1]\nIroning on a "
                              "taxi.\n\n[End of Assistant 1]\n\n[Assistant 2]\nHe irons.\n\n[End of Assistant 2]\n\n"
                              "[System]\nWe would like to request your feedback")


def test_judge_spec_is_checked(monkeypatch):
    with pytest.raises(SpecError, match=r"judge.url: expected an http\(s\) URL"):
        Judge.from_spec({"url": "localhost:8000", "model": "m"})
    monkeypatch.setenv("CSR_JUDGE_KEY_ENVS", "CSR_SURELY_UNSET_VARIABLE, OPENAI_API_KEY")
    with pytest.raises(SpecError, match=r"judge.api_key_env: expected the name of a set environment variable"):
        Judge.from_spec({"url": "http://localhost:8000/v1", "model": "m", "api_key_env": "CSR_SURELY_UNSET_VARIABLE"})
    # A set variable outside the operator's allowlist is refused: its value would be sent to the URL.
    monkeypatch.setenv("HOME_SECRET", "s3cret")
    with pytest.raises(SpecError, match=r"judge.api_key_env: expected one of CSR_SURELY_UNSET_VARIABLE, OPENAI_API_KEY, got \"HOME_SECRET\""):
        Judge.from_spec({"url": "http://localhost:8000/v1", "model": "m", "api_key_env": "HOME_SECRET"})
    monkeypatch.delenv("CSR_JUDGE_KEY_ENVS")
    with pytest.raises(SpecError, match=r"expected a variable listed in CSR_JUDGE_KEY_ENVS \(empty here\)"):
        Judge.from_spec({"url": "http://localhost:8000/v1", "model": "m", "api_key_env": "HOME_SECRET"})
    with pytest.raises(SpecError, match=r"judge.temperature: expected no such field"):
        Judge.from_spec({"url": "http://localhost:8000/v1", "model": "m", "temperature": 0})
    assert Judge.from_spec({"url": "http://h/v1/", "model": "m"}).endpoint == "http://h/v1/chat/completions"


def test_unreachable_judge_is_a_retryable_failure():
    judge = Judge(url="http://127.0.0.1:9/v1", model="m", attempts=1, timeout_s=5)
    with pytest.raises(RetryableError, match=r"judge http://127.0.0.1:9/v1/chat/completions \(model m\) failed 1 times"):
        judge.complete("hello", temperature=0.0, max_tokens=3)
