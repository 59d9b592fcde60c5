"""CHAIR on COCO val2014: captions of a set of images, scored against COCO instances and captions."""

from ..registry import Benchmark
from ._chair_files import OPTIONS, load_chair, parse_caption, score_chair

BENCHMARK = Benchmark(
    name="chair",
    title="CHAIR (COCO val2014)",
    data_files=("questions.jsonl", "annotations/instances_val2014.json", "annotations/captions_val2014.json"),
    prompt_template="{question}",
    load=lambda request: load_chair(request, instances="annotations/instances_val2014.json",
                                    captions="annotations/captions_val2014.json", captions_required=True,
                                    synonyms=None),
    parse_answer=parse_caption,
    score=score_chair,
    image_dirs=("val2014", "images", "."),
    max_new_tokens=512,
    options=OPTIONS,
)
