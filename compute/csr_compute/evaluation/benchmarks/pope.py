"""POPE on COCO (AoiDragon/POPE ``output/coco``): random, popular and adversarial splits."""

from ..registry import Benchmark
from ._pope_files import FILE_PATTERN, PROMPT, SPLITS, load_pope, parse_yes_no, score_pope

BENCHMARK = Benchmark(
    name="pope",
    title="POPE (COCO)",
    data_files=tuple(FILE_PATTERN.format(split=split) for split in SPLITS),
    prompt_template=PROMPT,
    load=load_pope,
    parse_answer=parse_yes_no,
    score=score_pope,
    image_dirs=("val2014", "images", "."),
    splits=SPLITS,
    options={"file": "one split file inside the data folder (any name; coco_pope_<split>.json names its split)",
             "llava_questions": "LLaVA's llava_pope_test.jsonl, to read answer files of LLaVA's eval scripts"},
)
