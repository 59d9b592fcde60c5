"""The toy world's POPE: same files, prompt and scorer as COCO POPE, over the toy world's scenes.

``toy_pope`` covers every held-out scene; ``toy_pope_dev`` and ``toy_pope_test`` (modules beside
this one) are the world's dev split, for choosing settings, and its test split, for reporting only.
"""

from ..registry import Benchmark
from ._pope_files import FILE_PATTERN, PROMPT, SPLITS, load_pope, parse_yes_no, score_pope


def toy_pope(name: str, title: str) -> Benchmark:
    return Benchmark(
        name=name,
        title=title,
        data_files=tuple(FILE_PATTERN.format(split=split) for split in SPLITS),
        prompt_template=PROMPT,
        load=load_pope,
        parse_answer=parse_yes_no,
        score=score_pope,
        image_dirs=(".", "images", "../../images", "../images"),
        max_new_tokens=16,
        splits=SPLITS,
    )


BENCHMARK = toy_pope("toy_pope", "toy-world POPE")
