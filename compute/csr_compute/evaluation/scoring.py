"""Scoring a benchmark's answers: match them to the questions, then run the benchmark's scorer."""

from __future__ import annotations

from typing import Any, Mapping

from .registry import Benchmark, Dataset, ScoreContext


def skipped_reason(benchmark: Benchmark, context: ScoreContext) -> str | None:
    if benchmark.needs_judge and context.judge is None:
        return (f"{benchmark.name} is scored by an LLM judge and none is configured "
                f"(set evaluate.judge: url and model of an OpenAI-compatible endpoint)")
    return None


def score(benchmark: Benchmark, dataset: Dataset, answers: Mapping[str, str | None],
          context: ScoreContext | None = None) -> dict[str, Any]:
    """Metrics with the official names; ``answers`` has an entry per question (None = no answer)."""
    context = context or ScoreContext()
    missing = sum(1 for item in dataset.items if answers.get(item.question_id) is None)
    counts = {"questions": len(dataset.items), "missing_answers": missing}
    reason = skipped_reason(benchmark, context)
    if reason is not None:
        return {**counts, "skipped": reason}
    metrics = benchmark.score(dataset, {item.question_id: answers.get(item.question_id) for item in dataset.items},
                              context)
    return {**metrics, **counts}
