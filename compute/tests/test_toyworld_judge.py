"""The toy world's ground-truth judge: mentions, synonyms, hallucinated / missed / repeated, pair verdicts."""

import json

import pytest

from csr_compute.contract import MissingInputError
from csr_compute.toyworld.judge import compare_pair, judge_response, load_scenes, objects_named

CUP_ALONE = {"image": "a.png", "objects": [{"name": "cup", "color": "red", "size": "small", "position": "top left"}]}
CUP_AND_DOG = {"image": "b.png", "objects": [{"name": "cup"}, {"name": "dog"}]}


def test_objects_named_maps_synonyms_and_keeps_every_mention_in_order():
    text = "the mug is small and red . the dish is big and white . the cup is small and red ."
    assert objects_named(text) == ["cup", "plate", "cup"]


def test_objects_named_ignores_words_that_only_contain_a_kind():
    # "scattered" contains "cat"-like fragments and "capital" starts with "cap": whole words only.
    assert objects_named("Capital letters, a scattered buster.") == []
    assert objects_named("A Puppy!") == ["dog"]


def test_judge_response_splits_named_into_hallucinated_and_reports_missed():
    result = judge_response(CUP_AND_DOG, "the cup is red . the plate is white . the plate is big and red .")
    assert result.named == ["cup", "plate"]
    assert result.hallucinated == ["plate"]
    assert result.missed == ["dog"]
    assert result.repeated == ["plate"]
    assert result.mentions == ["cup", "plate", "plate"]


def test_judge_response_of_an_empty_answer_misses_everything():
    result = judge_response(CUP_AND_DOG, "")
    assert (result.named, result.hallucinated, result.missed) == ([], [], ["cup", "dog"])


@pytest.mark.parametrize(
    ("chosen", "rejected", "verdict"),
    [
        ("the cup is red .", "the cup is red . the plate is white .", "better"),
        ("the cup is red . the plate is white .", "the cup is red .", "worse"),
        ("the cup is red . the dog is big and blue .", "the cup is red .", "better"),
        ("the dog is big and blue . the cup is red .", "the cup is red . the puppy is big and blue .", "equal"),
        # Fewer hallucinations outrank fewer misses.
        ("the cup is red .", "the cup is red . the dog is blue . the knife is red .", "better"),
    ],
)
def test_compare_pair(chosen, rejected, verdict):
    assert compare_pair(CUP_AND_DOG, chosen, rejected) == verdict


def test_bad_scene_names_the_field_and_value():
    with pytest.raises(ValueError, match=r"scene\.objects\[0\]\.name: expected one of .*got \"unicorn\""):
        judge_response({"objects": [{"name": "unicorn"}]}, "a unicorn")
    with pytest.raises(ValueError, match=r"scene\.objects: expected a list"):
        judge_response({"image": "x.png"}, "a cup")


def test_load_scenes_keys_by_image_and_reports_the_bad_line(tmp_path):
    path = tmp_path / "scenes.jsonl"
    path.write_text(json.dumps(CUP_ALONE) + "\n" + json.dumps(CUP_AND_DOG) + "\n")
    scenes = load_scenes(path)
    assert list(scenes) == ["a.png", "b.png"]
    assert scenes["a.png"]["objects"][0]["color"] == "red"

    path.write_text(json.dumps(CUP_ALONE) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"scenes\.jsonl:2: not a JSON line"):
        load_scenes(path)
    with pytest.raises(MissingInputError, match="does not exist"):
        load_scenes(tmp_path / "absent.jsonl")
