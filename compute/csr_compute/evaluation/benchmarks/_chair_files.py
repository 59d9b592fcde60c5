"""Reading a CHAIR set (shared by ``chair`` and ``toy_chair``).

- questions: JSON lines ``{question_id, image, text}`` (optionally ``image_id``), one caption prompt per image
- instances: COCO instances JSON (``images`` {id, file_name}, ``annotations`` {image_id, category_id},
  ``categories`` {id, name})
- captions (optional for the toy world): COCO captions JSON (``annotations`` {image_id, caption})
- synonyms: one line per object, "object, synonym, ..." (the standard COCO list by default)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ...contract import log
from ..datafiles import DataError, Record, check_unique, iter_jsonl, read_json
from ..registry import Dataset, Item, LoadRequest
from ..scorers.chair import COCO_SYNONYMS, Vocabulary, chair_metrics, image_objects

DEFAULT_PROMPT = "Please describe this image in detail."


def _coco_records(path: Path, document: Any, key: str, what: str) -> list[Record]:
    if not isinstance(document, dict) or not isinstance(document.get(key), list):
        keys = f" with keys {sorted(document)[:6]}" if isinstance(document, dict) else ""
        raise DataError(f"{path}: expected a COCO JSON object with a list {key!r}, got {type(document).__name__}{keys}")
    return [Record(path, f"{key}[{index}]", value, what) for index, value in enumerate(document[key])]


def _read_instances(path: Path) -> tuple[dict[str, int | str], list[tuple[int | str, str]]]:
    document = read_json(path, "COCO instances {images, annotations, categories}")
    images = _coco_records(path, document, "images", "an image {id, file_name}")
    categories = _coco_records(path, document, "categories", "a category {id, name}")
    annotations = _coco_records(path, document, "annotations", "an annotation {image_id, category_id}")
    by_file = {image.text("file_name"): image.get("id", (int, str), "an image id") for image in images}
    names = {category.get("id", (int, str), "a category id"): category.text("name") for category in categories}
    objects = []
    for annotation in annotations:
        category_id = annotation.get("category_id", (int, str), "a category id")
        if category_id not in names:
            raise annotation.error("category_id", f"one of the ids in 'categories' ({sorted(names)[:5]}...)")
        objects.append((annotation.get("image_id", (int, str), "an image id"), names[category_id]))
    return by_file, objects


def _read_captions(path: Path) -> list[tuple[int | str, str]]:
    document = read_json(path, "COCO captions {annotations: [{image_id, caption}]}")
    return [(record.get("image_id", (int, str), "an image id"), record.text("caption"))
            for record in _coco_records(path, document, "annotations", "a caption {image_id, caption}")]


def load_chair(request: LoadRequest, *, instances: str, captions: str | None, captions_required: bool,
               synonyms: Path | None) -> Dataset:
    options = request.options
    data_dir = request.data_dir
    questions_path = data_dir / options.get("questions", "questions.jsonl")
    # An explicit synonyms file is relative to the data folder; otherwise the benchmark's own, else COCO's.
    synonyms_path = data_dir / options["synonyms"] if "synonyms" in options else synonyms or COCO_SYNONYMS
    vocabulary = Vocabulary.from_file(synonyms_path)
    if synonyms_path != COCO_SYNONYMS:
        for word, singular in vocabulary.unmatchable():
            # The standard list has such entries too ("bus"); in a custom list they are likely a surprise.
            log(f"CHAIR: synonym {word!r} in {synonyms_path} singularises to {singular!r}, so only its plural can be "
                f"matched (as in the official metric); list the singular form the captions use to avoid this")

    instances_path = data_dir / options.get("instances", instances)
    by_file, annotated = _read_instances(instances_path)
    known_images = set(by_file.values())
    captions_name = options.get("captions", captions)
    reference: list[tuple[int | str, str]] = []
    if captions_name is not None:
        captions_path = data_dir / captions_name
        if captions_path.is_file() or captions_required or "captions" in options:
            reference = _read_captions(captions_path)

    items: list[Item] = []
    where: list[tuple[str, str]] = []
    for number, value in iter_jsonl(questions_path, "caption prompts {question_id, image, text}"):
        record = Record(questions_path, f"line {number}", value, "a caption prompt {question_id, image, text}")
        question_id = record.ident("question_id")
        image = record.text("image")
        image_id = record.get("image_id", (int, str), "an image id", optional=True)
        if image_id is not None and image_id not in known_images:
            raise record.error("image_id", f"an image id listed in {instances_path.name} 'images'")
        if image_id is None:
            image_id = by_file.get(image, by_file.get(Path(image).name))
            if image_id is None:
                raise record.error("image", f"a file_name listed in {instances_path.name} 'images'")
        where.append((question_id, f"line {number}"))
        items.append(Item(question_id=question_id, fields={"question": record.text("text", optional=True,
                                                                                 default=DEFAULT_PROMPT)},
                          image=image, truth=image_id))
    if not items:
        raise DataError(f"{questions_path}: no caption prompts")
    check_unique(where, questions_path)
    objects = image_objects(vocabulary, {item.truth for item in items}, annotated, reference, str(instances_path))
    return Dataset(items=items, source=questions_path, extra={"vocabulary": vocabulary, "objects": objects})


def score_chair(dataset: Dataset, answers: Mapping[str, str | None], _context: Any) -> dict[str, Any]:
    objects = dataset.extra["objects"]
    return chair_metrics(dataset.extra["vocabulary"],
                         ((objects[item.truth], answers[item.question_id]) for item in dataset.items))


def parse_caption(text: str) -> str:
    return text


OPTIONS = {
    "questions": "questions file, relative to the data folder (default questions.jsonl)",
    "instances": "COCO instances JSON, relative to the data folder",
    "captions": "COCO captions JSON with reference captions, relative to the data folder",
    "synonyms": "synonyms file (object, synonym, ...) if not the standard COCO list",
}
