"""ScienceQA-IMG: the test problems that have an image (lupantech/ScienceQA ``data/scienceqa``).

Prompt as LLaVA-1.5 / lmms-eval: "Context: <hint>\n" (when there is a hint), the question, the choices as
"A. ..." lines, then the option-letter instruction. Images: ``images/<split>/<pid>/<image>``.

Scored as LLaVA ``llava/eval/eval_science_qa.py`` (commit c121f043) does: ``img_accuracy`` is its
IMG-Accuracy. That script decides "multimodal" from the answer's prompt, and gives a problem without an
answer the prompt "Unknown", so a missing answer leaves the IMG denominator (it stays a wrong answer of
the overall accuracy); option ``missing: wrong`` counts it as a wrong image answer instead. With option
``questions: all`` every problem of the split is loaded (those without an image too, as LLaVA's answer
files have them) and ``accuracy``, the script's overall "Accuracy" over the whole split, is reported.
"""

from __future__ import annotations

from typing import Any, Mapping

from ...contract import SpecError
from ..datafiles import DataError, Record, read_json
from ..registry import OPTION_LETTER, Benchmark, Dataset, Item, LoadRequest
from ..scorers import percent
from ..scorers.choice import SQA_OPTIONS, parse_scienceqa, scienceqa_correct


def load(request: LoadRequest) -> Dataset:
    questions = request.options.get("questions", "img")
    if questions not in ("img", "all"):
        raise SpecError("benchmark.questions", questions, "img (problems with an image, the default) or all")
    missing = request.options.get("missing", "official")
    if missing not in ("official", "wrong"):
        raise SpecError("benchmark.missing", missing, "official (the default) or wrong")
    split = request.split or "test"
    problems_path = request.data_dir / "problems.json"
    splits_path = request.data_dir / "pid_splits.json"
    problems = read_json(problems_path, "ScienceQA problems {pid: {question, choices, answer, hint, image, ...}}")
    splits = read_json(splits_path, "ScienceQA splits {split: [pid, ...]}")
    if not isinstance(problems, dict):
        raise DataError(f"{problems_path}: expected an object {{pid: problem}}, got {type(problems).__name__}")
    if not isinstance(splits, dict) or not isinstance(splits.get(split), list):
        raise DataError(f"{splits_path}: expected an object with a list {split!r} of problem ids")
    items: list[Item] = []
    for position, pid in enumerate(splits[split]):
        if str(pid) not in problems:
            raise DataError(f"{splits_path} {split}[{position}]: problem id {pid!r} is not in {problems_path.name}")
        record = Record(problems_path, f"problem {pid!r}", problems[str(pid)], "a ScienceQA problem")
        image = record.text("image", optional=True)
        if image is None and questions == "img":
            continue  # ScienceQA-IMG: only problems with an image
        choices = record.get("choices", list, "a list of choice strings")
        if not 2 <= len(choices) <= len(SQA_OPTIONS) or not all(isinstance(c, str) for c in choices):
            raise record.error("choices", f"2 to {len(SQA_OPTIONS)} choice strings")
        answer = record.get("answer", int, "the index of the right choice")
        if not 0 <= answer < len(choices):
            raise record.error("answer", f"an index into the {len(choices)} choices")
        hint = record.text("hint", optional=True, default="")
        context = f"Context: {hint}\n" if hint else ""
        listed = "\n".join(f"{letter}. {choice}" for letter, choice in zip(SQA_OPTIONS, choices))
        items.append(Item(question_id=str(pid), fields={"question": f"{context}{record.text('question')}\n{listed}"},
                          image=f"{split}/{pid}/{image}" if image else None,
                          truth={"answer": answer, "choices": len(choices), "has_image": image is not None}))
    if not any(item.truth["has_image"] for item in items):
        raise DataError(f"{splits_path}: split {split!r} has no problem with an image")
    return Dataset(items=items, source=problems_path, extra={"questions": questions, "missing": missing})


def score(dataset: Dataset, answers: Mapping[str, str | None], _context: Any) -> dict[str, Any]:
    right = {item.question_id: scienceqa_correct(answers[item.question_id], item.truth["answer"],
                                                 item.truth["choices"]) for item in dataset.items}
    official = dataset.extra.get("missing", "official") == "official"
    image_items = [item for item in dataset.items if item.truth["has_image"]
                   and not (official and answers[item.question_id] is None)]
    metrics = {"img_accuracy": percent(sum(right[item.question_id] for item in image_items), len(image_items))}
    if dataset.extra.get("questions") == "all":
        metrics["accuracy"] = percent(sum(right.values()), len(right))
    return metrics


BENCHMARK = Benchmark(
    name="scienceqa_img",
    title="ScienceQA-IMG",
    data_files=("problems.json", "pid_splits.json", "images/<split>/<pid>/image.png"),
    prompt_template="{question}\n" + OPTION_LETTER,
    load=load,
    parse_answer=parse_scienceqa,
    score=score,
    image_dirs=("images",),
    max_new_tokens=1024,
    splits=("test", "val", "minival", "train", "trainval", "minitrain"),
    default_split="test",
    options={"questions": "img (problems with an image; default) or all (every problem of the split, for answer "
                          "files that cover it; adds the overall accuracy)",
             "missing": "a missing answer: official (left out of img_accuracy, as eval_science_qa.py; default) or "
                        "wrong (a wrong image answer)"},
)
