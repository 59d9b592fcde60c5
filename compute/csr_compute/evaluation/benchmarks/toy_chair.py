"""The toy world's CHAIR: its own objects and synonyms, ground truth from its instances (and captions if shipped).

``toy_chair`` covers every held-out scene; ``toy_chair_dev`` and ``toy_chair_test`` (modules beside
this one) are the world's dev split, for choosing settings, and its test split, for reporting only.
"""

from ..registry import Benchmark
from ._chair_files import OPTIONS, load_chair, parse_caption, score_chair


def toy_chair(name: str, title: str) -> Benchmark:
    return Benchmark(
        name=name,
        title=title,
        data_files=("questions.jsonl", "instances.json", "synonyms.txt", "captions.json (optional)"),
        prompt_template="{question}",
        load=lambda request: load_chair(request, instances="instances.json", captions="captions.json",
                                        captions_required=False, synonyms=request.data_dir / "synonyms.txt"),
        parse_answer=parse_caption,
        score=score_chair,
        image_dirs=(".", "images", "../../images", "../images"),
        max_new_tokens=64,
        options=OPTIONS,
    )


BENCHMARK = toy_chair("toy_chair", "toy-world CHAIR")
