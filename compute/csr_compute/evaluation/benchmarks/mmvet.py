"""MM-Vet v1 (``yuweihao/MM-Vet`` release ``mm-vet.zip``): ``mm-vet.json`` and ``images/``, graded by an LLM."""

from __future__ import annotations

from typing import Any, Mapping

from ..datafiles import DataError, Record, read_json
from ..registry import Benchmark, Dataset, Item, LoadRequest, ScoreContext
from ..scorers.judged import mmvet_grade, mmvet_metrics, mmvet_query


def load(request: LoadRequest) -> Dataset:
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
    return Dataset(items=items, source=path)


def score(dataset: Dataset, answers: Mapping[str, str | None], context: ScoreContext) -> dict[str, Any]:
    judge = context.judge
    graded = []
    for done, item in enumerate(dataset.items, start=1):
        text = answers[item.question_id]
        if text is None:
            value = 0.0
        else:
            query = mmvet_query(item.fields["question"], item.truth["answer"], text)
            value = mmvet_grade(query, lambda prompt, temperature, attempt: judge.complete(
                prompt, temperature=temperature, max_tokens=3, attempt=attempt))
        graded.append((item.truth["capabilities"], value))
        if context.on_progress:
            context.on_progress(done, len(dataset.items))
    return mmvet_metrics(graded)


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
)
