"""LLaVA-Bench in-the-wild (HF ``liuhaotian/llava-bench-in-the-wild``): 60 questions on 24 images, judged by an LLM.

Files: ``questions.jsonl`` {question_id, image, text, category}, ``context.jsonl`` {image, caption},
``answers_gpt4.jsonl`` {question_id, text} (the reference answers), ``images/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from ..datafiles import DataError, Record, check_unique, iter_jsonl
from ..registry import Benchmark, Dataset, Item, LoadRequest, ScoreContext
from ..scorers.judged import (LLAVA_BENCH_SYSTEM, llava_bench_content, llava_bench_parse,
                              llava_bench_relative)

RULES = json.loads((Path(__file__).resolve().parents[1] / "data" / "llava_bench_rule.json").read_text())


def load(request: LoadRequest) -> Dataset:
    data_dir = request.data_dir
    contexts: dict[str, str] = {}
    context_path = data_dir / "context.jsonl"
    for number, value in iter_jsonl(context_path, "image captions {image, caption}"):
        record = Record(context_path, f"line {number}", value, "an image context {image, caption}")
        caption = record.get("caption", (str, list), "a caption or a list of captions")
        contexts[record.text("image")] = "\n".join(caption) if isinstance(caption, list) else caption
    references: dict[str, str] = {}
    reference_path = data_dir / "answers_gpt4.jsonl"
    for number, value in iter_jsonl(reference_path, "GPT-4 reference answers {question_id, text}"):
        record = Record(reference_path, f"line {number}", value, "a reference answer {question_id, text}")
        references[record.ident("question_id")] = record.text("text")
    questions_path = data_dir / "questions.jsonl"
    items, where = [], []
    for number, value in iter_jsonl(questions_path, "questions {question_id, image, text, category}"):
        record = Record(questions_path, f"line {number}", value, "a question {question_id, image, text, category}")
        question_id, image, category = record.ident("question_id"), record.text("image"), record.text("category")
        if f"llava_bench_{category}" not in RULES:
            raise record.error("category", "one of conv, detail, complex")
        if image not in contexts:
            raise DataError(f"{questions_path} line {number}: image {image!r} has no captions in {context_path.name}")
        if question_id not in references:
            raise DataError(f"{questions_path} line {number}: question {question_id!r} has no reference answer "
                            f"in {reference_path.name}")
        where.append((question_id, f"line {number}"))
        items.append(Item(question_id=question_id, fields={"question": record.text("text")}, image=image,
                          truth={"category": category, "context": contexts[image],
                                 "reference": references[question_id]}))
    check_unique(where, questions_path)
    return Dataset(items=items, source=questions_path)


def score(dataset: Dataset, answers: Mapping[str, str | None], context: ScoreContext) -> dict[str, Any]:
    pairs: dict[str, list[tuple[float, float]]] = {}
    for done, item in enumerate(dataset.items, start=1):
        text = answers[item.question_id]
        rule = RULES[f"llava_bench_{item.truth['category']}"]
        content = llava_bench_content(item.truth["context"], item.fields["question"], item.truth["reference"],
                                      text or "", rule["prompt"], rule["role"])
        reference, model = llava_bench_parse(context.judge.complete(content, temperature=0.2, max_tokens=1024,
                                                                    system=LLAVA_BENCH_SYSTEM))
        pairs.setdefault(item.truth["category"], []).append((reference, 0.0 if text is None else model))
        if context.on_progress:
            context.on_progress(done, len(dataset.items))
    every = [pair for values in pairs.values() for pair in values]
    metrics: dict[str, Any] = dict(llava_bench_relative(every))
    # summarize_gpt_review.py prints relative, reference x 10 and model x 10 for every category, as for "all".
    for category, values in sorted(pairs.items()):
        for name, value in llava_bench_relative(values).items():
            metrics[f"{name}/{category}"] = value
    return metrics


BENCHMARK = Benchmark(
    name="llava_wild",
    title="LLaVA-Bench (in-the-wild)",
    data_files=("questions.jsonl", "context.jsonl", "answers_gpt4.jsonl", "images/"),
    prompt_template="{question}",
    load=load,
    parse_answer=lambda text: text,
    score=score,
    image_dirs=("images",),
    max_new_tokens=1024,
    needs_judge=True,
)
