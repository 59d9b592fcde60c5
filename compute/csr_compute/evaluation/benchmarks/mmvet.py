"""MM-Vet v1 (``yuweihao/MM-Vet`` release ``mm-vet.zip``): ``mm-vet.json`` and ``images/``, graded by an LLM."""

from __future__ import annotations

from typing import Any, Mapping

from ...contract import SpecError
from ..datafiles import DataError, Record, read_json
from ..registry import Benchmark, Dataset, Item, LoadRequest, ScoreContext
from ..scorers.judged import mmvet_grade, mmvet_metrics, mmvet_passes, mmvet_query


def _passes(value: Any) -> int:
    try:
        passes = int(value)
    except (TypeError, ValueError):
        passes = 0
    if passes < 1 or str(value).strip() != str(passes):
        raise SpecError("benchmark.passes", value, "a whole number of grading passes >= 1 (the paper used 5)")
    return passes


def load(request: LoadRequest) -> Dataset:
    passes = _passes(request.options.get("passes", 1))
    path = request.data_dir / "mm-vet.json"
    document = read_json(path, "MM-Vet {id: {imagename, question, answer, capability}}")
    if not isinstance(document, dict):
        raise DataError(f"{path}: expected an object {{id: question}}, got {type(document).__name__}")
    items = []
    for question_id, value in document.items():
        record = Record(path, f"question {question_id!r}", value, "an MM-Vet question")
        capabilities = record.get("capability", list, "a list of capabilities (rec, ocr, know, gen, spat, math)")
        items.append(Item(question_id=str(question_id), fields={"question": record.text("question")},
                          image=record.text("imagename"),
                          truth={"answer": record.text("answer"), "capabilities": [str(c) for c in capabilities]}))
    return Dataset(items=items, source=path, extra={"passes": passes})


# Each pass asks afresh, as the official evaluator's runs do: a pass's requests are told apart from the
# others' in the judge's cache by this offset on the attempt number (pass 0 keeps the plain numbers).
PASS_ATTEMPT_OFFSET = 1000


def score(dataset: Dataset, answers: Mapping[str, str | None], context: ScoreContext) -> dict[str, Any]:
    judge = context.judge
    passes = dataset.extra.get("passes", 1)
    per_pass = []
    for p in range(passes):
        graded = []
        for done, item in enumerate(dataset.items, start=1):
            text = answers[item.question_id]
            if text is None:
                value = 0.0
            else:
                query = mmvet_query(item.fields["question"], item.truth["answer"], text)
                value = mmvet_grade(query, lambda prompt, temperature, attempt: judge.complete(
                    prompt, temperature=temperature, max_tokens=3, attempt=attempt + p * PASS_ATTEMPT_OFFSET))
            graded.append((item.truth["capabilities"], value))
            if context.on_progress:
                context.on_progress(p * len(dataset.items) + done, passes * len(dataset.items))
        per_pass.append(mmvet_metrics(graded))
    return mmvet_passes(per_pass)


BENCHMARK = Benchmark(
    name="mmvet",
    title="MM-Vet",
    data_files=("mm-vet.json", "images/"),
    prompt_template="{question}",
    load=load,
    parse_answer=lambda text: text,
    score=score,
    image_dirs=("images",),
    max_new_tokens=1024,
    needs_judge=True,
    options={"passes": "grading passes, reported as their mean and sd (default 1; the paper used 5)"},
)
