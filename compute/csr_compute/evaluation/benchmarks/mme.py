"""MME (BradyFU, ``MME_Benchmark_release_version``): 14 yes/no sub-tasks, two questions per image.

Layout of the release: ``<subtask>/`` holds images and, per image, a ``.txt`` with two lines
"question<TAB>Yes|No"; five sub-tasks (artwork, celebrity, landmark, posters, scene) keep them in
``<subtask>/images/`` and ``<subtask>/questions_answers_YN/`` instead. Question ids are
``<subtask>/<image file>/<0|1>`` (line order in the .txt).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ...contract import SpecError
from ..datafiles import DataError
from ..registry import SHORT_ANSWER, Benchmark, Dataset, Item, LoadRequest
from ..scorers.mme import COGNITION, PARSE_RULES, PERCEPTION, parse_yes_no_other, subtask_scores

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")


def _folders(subtask_dir: Path) -> tuple[Path, Path]:
    if (subtask_dir / "questions_answers_YN").is_dir():
        return subtask_dir / "images", subtask_dir / "questions_answers_YN"
    return subtask_dir, subtask_dir


def _image_for(image_dir: Path, stem: str, txt: Path) -> Path:
    for suffix in IMAGE_SUFFIXES:
        if (image_dir / (stem + suffix)).is_file():
            return image_dir / (stem + suffix)
    raise DataError(f"{txt}: no image {stem}.jpg/.png in {image_dir}")


def load(request: LoadRequest) -> Dataset:
    rule = request.options.get("parse", "official")
    if rule not in PARSE_RULES:
        raise SpecError("benchmark.parse", rule, "official (calculation.py, the default) or lmms_eval")
    subtasks = [request.split] if request.split else list(PERCEPTION + COGNITION)
    items: list[Item] = []
    for subtask in subtasks:
        subtask_dir = request.data_dir / subtask
        if not subtask_dir.is_dir():
            raise DataError(f"MME: sub-task folder {str(subtask_dir)!r} not found (expected the 14 sub-task folders "
                            f"of MME_Benchmark_release_version in {request.data_dir})")
        image_dir, qa_dir = _folders(subtask_dir)
        txts = sorted(qa_dir.glob("*.txt"))
        if not txts:
            raise DataError(f"MME: no question files (*.txt) in {qa_dir}")
        for txt in txts:
            image = _image_for(image_dir, txt.stem, txt)
            lines = [line for line in txt.read_text(encoding="utf-8").splitlines() if line.strip()]
            if len(lines) != 2:
                raise DataError(f"{txt}: expected 2 lines 'question<TAB>Yes|No' (MME asks two questions per image), "
                                f"got {len(lines)}")
            for k, line in enumerate(lines):
                question, tab, answer = line.rpartition("\t")
                label = answer.strip().lower()
                if not tab or label not in ("yes", "no"):
                    raise DataError(f"{txt} line {k + 1}: expected 'question<TAB>Yes' or 'question<TAB>No', "
                                    f"got {line!r}")
                items.append(Item(
                    question_id=f"{subtask}/{image.name}/{k}",
                    fields={"question": question.strip().replace(" Please answer yes or no.", "")},
                    image=str(image.relative_to(request.data_dir)),
                    group=f"{subtask}/{image.name}",
                    truth={"subtask": subtask, "label": label},
                ))
    return Dataset(items=items, source=request.data_dir, extra={"parse": rule})


def score(dataset: Dataset, answers: Mapping[str, str | None], _context: Any) -> dict[str, Any]:
    per_subtask: dict[str, dict[str, list[tuple[str, str | None]]]] = {}
    for item in dataset.items:
        images = per_subtask.setdefault(item.truth["subtask"], {})
        images.setdefault(item.group, []).append((item.truth["label"], answers[item.question_id]))
    metrics: dict[str, Any] = {}
    for subtask, images in per_subtask.items():
        for name, value in subtask_scores(images.values(), dataset.extra.get("parse", "official")).items():
            metrics[f"{subtask}/{name}"] = value
    for total, members in (("perception", PERCEPTION), ("cognition", COGNITION)):
        # A partial total (one split, or a limit) would look comparable to the published one: leave it out.
        if all(m in per_subtask for m in members):
            metrics[total] = sum(metrics[f"{m}/score"] for m in members)
    return metrics


BENCHMARK = Benchmark(
    name="mme",
    title="MME",
    data_files=tuple(f"{s}/" for s in PERCEPTION + COGNITION),
    prompt_template="{question}\n" + SHORT_ANSWER,
    load=load,
    parse_answer=parse_yes_no_other,
    score=score,
    splits=PERCEPTION + COGNITION,
    options={"parse": "answer rule: official (calculation.py, lower-case only; default) or lmms_eval (also strips, "
                      "removes '.', reads a bare y/n)"},
)
