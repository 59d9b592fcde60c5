"""MMBench (EN dev, ``mmbench_dev_20230712.tsv`` from OpenMMLab), scored with CircularEval.

The TSV has one row per (question, option rotation); the question id of a row is its ``index``.
"""

from __future__ import annotations

import csv
import re
import sys
from typing import Any, Mapping

from ...contract import SpecError
from ..datafiles import DataError, first_existing
from ..registry import OPTION_LETTER, Benchmark, Dataset, Item, LoadRequest, ScoreContext
from ..scorers.mmbench import MISSING_RULES, Row, circular_accuracy, circular_eval, infer_letter
from ..scorers import percent

DEFAULT_FILES = {"dev": "mmbench_dev_20230712.tsv"}
REQUIRED_COLUMNS = ("index", "question", "A", "B", "answer", "image")
# pandas.read_table turns these cells into NaN, and the official code treats NaN (and "none") as absent.
PANDAS_NA = frozenset(("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                       "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"))
CIRCULAR = 1_000_000


def _absent(value: str | None) -> bool:
    return value is None or value in PANDAS_NA or value.lower() in ("nan", "none")


def _read_rows(path) -> tuple[list[dict[str, str]], list[str]]:
    csv.field_size_limit(sys.maxsize)  # images are base64 cells of several hundred kB
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        columns = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise DataError(f"{path}: header lacks column(s) {missing}; expected the MMBench TSV columns "
                            f"index, question, hint, A..D, answer, category, l2-category, image (got {columns[:12]})")
        return list(reader), columns


def load(request: LoadRequest) -> Dataset:
    missing = request.options.get("missing", "official")
    if missing not in MISSING_RULES:
        raise SpecError("benchmark.missing", missing, "official (the default) or wrong")
    name = request.options.get("file")
    path = first_existing(request.data_dir, [name] if name else [DEFAULT_FILES[request.split or "dev"]],
                          "MMBench TSV")
    rows, columns = _read_rows(path)
    option_columns = [c for c in "ABCD" if c in columns]
    images_by_index: dict[str, str] = {}
    items: list[Item] = []
    seen: dict[int, int] = {}
    for number, row in enumerate(rows, start=2):
        where = f"{path} line {number}"
        if not re.fullmatch(r"\d+", row["index"] or ""):
            raise DataError(f"{where}: field 'index': expected a non-negative integer, got {row['index']!r}")
        index = int(row["index"])
        if index in seen:
            raise DataError(f"{where}: duplicate index {index} (first at line {seen[index]})")
        seen[index] = number
        answer = row["answer"]
        if answer not in option_columns:
            raise DataError(f"{where}: field 'answer': expected one of {option_columns}, got {answer!r}")
        options = {c: row[c] for c in option_columns if not _absent(row[c])}
        in_order = []
        for c in option_columns:
            if _absent(row[c]):
                break
            in_order.append(row[c])
        if answer not in options:
            raise DataError(f"{where}: the answer {answer!r} names an empty option")
        question = row["question"]
        hint = row.get("hint")
        shown = question if _absent(hint) else f"{hint}\n{question}"
        for letter, text in zip("ABCD", in_order):
            shown += f"\n{letter}. {text}"
        image = row["image"]
        if len(image) < 64 and image.isdigit():
            # Some releases store an image once and refer to it by the index of the row that holds it.
            image = images_by_index.get(image, "")
        if not image:
            raise DataError(f"{where}: field 'image': expected base64 image data")
        images_by_index[row["index"]] = image
        items.append(Item(
            question_id=str(index), fields={"question": shown}, image_b64=image, group=str(index % CIRCULAR),
            truth={"index": index, "answer": answer, "options": options, "in_order": in_order, "question": question,
                   "category": row.get("category") or "", "l2": row.get("l2-category") or ""},
        ))
    return Dataset(items=items, source=path, extra={"option_columns": len(option_columns), "missing": missing})


def _metric_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "uncategorized"


def score(dataset: Dataset, answers: Mapping[str, str | None], context: ScoreContext) -> dict[str, Any]:
    groups: dict[int, list[Row]] = {}
    main_rows: dict[int, dict] = {}
    for item in dataset.items:
        truth = item.truth
        main = truth["index"] % CIRCULAR
        groups.setdefault(main, []).append(Row(index=truth["index"], answer=truth["answer"], options=truth["options"],
                                               options_in_order=truth["in_order"], question=truth["question"],
                                               prediction=answers[item.question_id]))
        if truth["index"] < CIRCULAR:
            main_rows[main] = truth
    # Only questions whose unrotated row is present are counted, as in the official evaluator.
    groups = {main: rows for main, rows in groups.items() if main in main_rows}
    ask = None
    if context.judge is not None:
        ask = lambda prompt: context.judge.complete(prompt, temperature=0.0, max_tokens=256)  # noqa: E731
    result = circular_eval(groups, dataset.extra["option_columns"], ask, dataset.extra.get("missing", "official"))
    metrics: dict[str, Any] = {"circular_accuracy": circular_accuracy(result)}
    for key, prefix in (("category", "category"), ("l2", "l2_category")):
        by: dict[str, list[bool]] = {}
        for main, hit in result.hits.items():
            by.setdefault(main_rows[main][key] or "uncategorized", []).append(hit)
        for name, hits in sorted(by.items()):
            metrics[f"{prefix}/{_metric_name(name)}"] = percent(sum(hits), len(hits))
    metrics.update({"circular_questions": len(result.hits), "unparsed_rows": result.unparsed_rows,
                    "judge_matched_rows": result.judged_rows, "random_choice_rows": result.random_rows})
    return metrics


BENCHMARK = Benchmark(
    name="mmbench",
    title="MMBench-EN dev",
    data_files=(DEFAULT_FILES["dev"],),
    prompt_template="{question}\n" + OPTION_LETTER,
    load=load,
    parse_answer=lambda text: infer_letter(text, {}),
    score=score,
    max_new_tokens=1024,
    splits=("dev",),
    default_split="dev",
    judge_optional=True,
    options={"file": "TSV file name inside the data folder (default mmbench_dev_20230712.tsv)",
             "missing": "a missing answer: official (an empty prediction: judge, then the seeded random letter; "
                        "default) or wrong (its question is wrong, no draw)"},
)
