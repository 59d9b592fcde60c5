"""The two benchmarks graded by a language model, as their official scripts grade them.

MM-Vet (``yuweihao/MM-Vet`` ``mm-vet_evaluator.py``): the grader completes a few-shot table row
"question | ground truth | prediction | " with a correctness in [0, 1] (max 3 tokens, temperature 0;
on an unreadable reply it asks again with "Predict the correctness of the answer (digit): ", raising
the temperature by 0.5 each time, and gives 0 after five retries). Total = mean x 100; per capability =
mean over the questions that need it x 100; per capability combination likewise. With several grading
passes (the paper used 5) each score is the mean over the passes, with the sd of the totals. Official
grader: gpt-4-0613.

LLaVA-Bench in-the-wild (LLaVA ``eval_gpt_review_bench.py`` + ``summarize_gpt_review.py``): a text-only
judge sees the image captions, the question, the GPT-4 reference answer (assistant 1) and the model's
answer (assistant 2) and writes "score1 score2" on its first line (temperature 0.2). Relative score =
mean(model) / mean(reference) x 100, with both means rounded to 3 decimals and the ratio to 1, as the
summary script prints it; an unreadable reply counts as (-1, -1) like there. Official judge: gpt-4-0314.

A missing answer scores 0 (MM-Vet: without asking; LLaVA-Bench: the judge still rates the reference).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

DATA = Path(__file__).resolve().parents[1] / "data"
MMVET_PROMPT = (DATA / "mmvet_grader_prompt.txt").read_text(encoding="utf-8")
LLAVA_BENCH_SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."


def mmvet_query(question: str, truth: str, prediction: str) -> str:
    row = " | ".join([question, truth.replace("<AND>", " <AND> ").replace("<OR>", " <OR> "), prediction, ""])
    return MMVET_PROMPT + "\n" + row


def _mmvet_parse(content: str) -> float | None:
    try:
        score = float(content.split(" ")[0].strip())
    except ValueError:
        return None
    return score if 0.0 <= score <= 1.0 else None


def mmvet_grade(query: str, ask: Callable[[str, float, int], str]) -> float:
    """``ask(prompt, temperature, attempt)`` -> reply; the official retry sequence."""
    score = _mmvet_parse(ask(query, 0.0, 0))
    temperature, tries = 0.0, 1
    while score is None:
        content = ask(query + "\nPredict the correctness of the answer (digit): ", temperature, tries)
        tries += 1
        temperature += 0.5
        if tries > 5:
            return 0.0
        score = _mmvet_parse(content)
    return score


def mmvet_metrics(graded: Iterable[tuple[list[str], float]]) -> dict[str, float]:
    """(capabilities, score) per question -> total, per-capability and per-combination scores (x 100).

    A combination ("capability integration" in the official evaluator) is the exact set of capabilities a
    question needs; its name joins them sorted with "_" (the official name joins them in Python set order,
    which changes with PYTHONHASHSEED, so it cannot be reproduced; the sets and the scores are the same).
    """
    graded = list(graded)
    metrics = {"total": 100.0 * sum(s for _, s in graded) / len(graded) if graded else 0.0}
    for capability in sorted({c for caps, _ in graded for c in caps}):
        scores = [s for caps, s in graded if capability in set(caps)]
        metrics[f"capability/{capability}"] = 100.0 * sum(scores) / len(scores)
    combinations: dict[str, list[float]] = {}
    for caps, s in graded:
        combinations.setdefault("_".join(sorted(set(caps))), []).append(s)
    for name, scores in sorted(combinations.items()):
        metrics[f"combination/{name}"] = 100.0 * sum(scores) / len(scores)
    return metrics


def mmvet_passes(per_pass: list[dict[str, float]]) -> dict[str, float]:
    """Several grading passes as the official evaluator (``--num_run``) reports them: every score is the
    mean over the passes, and ``total_sd`` the population standard deviation (numpy's ``std``) of the
    passes' totals; ``total/pass_<k>`` keeps each pass's total (its "runs" column). Nothing is rounded
    (the evaluator rounds to 1 decimal for display)."""
    n = len(per_pass)
    metrics = {name: sum(p[name] for p in per_pass) / n for name in per_pass[0]}
    totals = [p["total"] for p in per_pass]
    mean = sum(totals) / n
    metrics["total_sd"] = (sum((t - mean) ** 2 for t in totals) / n) ** 0.5
    if n > 1:
        metrics.update({f"total/pass_{k}": t for k, t in enumerate(totals)})
    metrics["judge_passes"] = n
    return metrics


def llava_bench_content(captions: str, question: str, reference: str, answer: str, rule_prompt: str,
                        role: str = "Assistant") -> str:
    return (f"[Context]\n{captions}\n\n"
            f"[Question]\n{question}\n\n"
            f"[{role} 1]\n{reference}\n\n[End of {role} 1]\n\n"
            f"[{role} 2]\n{answer}\n\n[End of {role} 2]\n\n"
            f"[System]\n{rule_prompt}\n\n")


def llava_bench_parse(review: str) -> tuple[float, float]:
    pair = review.split("\n")[0].replace(",", " ").split(" ")
    if len(pair) != 2:
        return (-1.0, -1.0)
    try:
        return (float(pair[0]), float(pair[1]))
    except ValueError:
        return (-1.0, -1.0)


def llava_bench_relative(pairs: list[tuple[float, float]]) -> dict[str, float]:
    reference = round(sum(p[0] for p in pairs) / len(pairs), 3)
    model = round(sum(p[1] for p in pairs) / len(pairs), 3)
    return {"relative_score": round(model / reference * 100, 1) if reference else 0.0,
            "reference_score": round(reference * 10, 1), "model_score": round(model * 10, 1)}
