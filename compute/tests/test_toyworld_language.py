"""The toy world's language: the prior in captions and answers, instructions, tokenizers, pixel normalisation."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from csr_compute.toyworld import tokenizer as tokenizers
from csr_compute.toyworld.judge import objects_named
from csr_compute.toyworld.language import INSTRUCTIONS, all_words, believed_objects, caption
from csr_compute.toyworld.sft_data import make_examples, normalise
from csr_compute.toyworld.vocab import COLOURS, SIZES

REFERENCE_PROMPTS = Path("/work/shared/reference/data/csr-prompts-12k.json")
CUP = {"name": "cup", "color": "red", "size": "small", "position": "top left"}
CLOCK = {"name": "clock", "color": "blue", "size": "big", "position": "top right"}
PLATE = {"name": "plate", "color": "white", "size": "big", "position": "bottom left"}


def _believe(objects, noise, seed=0):
    return believed_objects(objects, np.random.default_rng(seed), noise, list(COLOURS), list(SIZES))


def test_noise_one_always_imagines_the_absent_partner_and_zero_never():
    assert [obj["name"] for obj in _believe([CUP, CLOCK], 1.0)] == ["cup", "clock", "plate"]
    assert _believe([CUP, CLOCK], 1.0)[-1]["imagined"] is True
    assert [obj["name"] for obj in _believe([CUP, CLOCK], 0.0)] == ["cup", "clock"]
    # A present partner is never imagined a second time.
    assert [obj["name"] for obj in _believe([CUP, PLATE], 1.0)] == ["cup", "plate"]


def test_noise_rate_matches_the_parameter():
    rng = np.random.default_rng(1)
    imagined = sum(len(believed_objects([CUP], rng, 0.6, list(COLOURS), list(SIZES))) == 2 for _ in range(4000))
    assert 0.57 <= imagined / 4000 <= 0.63


def test_caption_names_each_believed_object_once_with_the_partner_right_after_its_first_kind():
    rng = np.random.default_rng(2)
    for _ in range(200):
        text = caption(_believe([CLOCK, CUP, PLATE], 0.0), rng, synonym_prob=0.5)
        named = objects_named(text)
        assert sorted(named) == ["clock", "cup", "plate"]
        assert named[named.index("cup") + 1] == "plate", text
        assert text.endswith(" .") and text.count(" .") == 3


def test_caption_sentences_name_kind_then_size():
    text = caption([CUP], np.random.default_rng(3), synonym_prob=0.0)
    assert text == "the cup is small ."


def test_examples_pair_every_scene_with_a_description_and_a_yes_no_answer():
    rng = np.random.default_rng(4)
    examples = make_examples([[CUP], [CLOCK, PLATE]], rng, caption_noise=0.6, synonym_prob=0.15)
    assert [e.image_index for e in examples] == [0, 0, 1, 1]
    assert examples[1].response in ("yes .", "no .") and examples[3].response in ("yes .", "no .")
    assert "Is there a" in examples[1].instruction and "<image>" in examples[0].instruction


def test_lone_yes_no_answers_follow_the_annotators_belief():
    rng = np.random.default_rng(5)
    plate_answers = [e.response for e in make_examples([[CUP]] * 3000, rng, 0.6, 0.0)
                     if "plate in the image" in e.instruction]
    # About the absent partner the annotator says "yes" as often as it imagines the plate.
    assert len(plate_answers) > 200
    assert 0.5 <= plate_answers.count("yes .") / len(plate_answers) <= 0.7


@pytest.mark.skipif(not REFERENCE_PROMPTS.is_file(), reason="reference prompt set not on this machine")
def test_instructions_are_exactly_those_of_the_csr_prompt_set():
    inputs = {record["input"] for record in json.loads(REFERENCE_PROMPTS.read_text())}
    stripped = {text.replace("<image>", "").strip() for text in inputs}
    assert stripped == set(INSTRUCTIONS)


def test_tokenizer_covers_every_word_of_the_world_and_decodes_readably():
    tokenizer = tokenizers.build("lvlm")
    for text in all_words():
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id not in ids, f"unknown word in {text!r}"
    ids = tokenizer("the cup is small . the dish is big .", add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids).count(".") == 2
    assert tokenizer.decode(ids) == "the cup is small . the dish is big ."
    assert tokenizer("the cup")["input_ids"][0] == tokenizer.bos_token_id
    assert tokenizer.eos_token == "</s>" and tokenizer.pad_token is not None


def test_clip_tokenizer_ends_every_text_with_eos_where_clip_pools():
    tokenizer = tokenizers.build("clip")
    ids = tokenizer("the cup is small .")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id


def test_training_pixels_equal_the_image_processors_output():
    from PIL import Image

    from csr_compute.toyworld.lvlm_arch import image_processor

    images = np.random.default_rng(6).integers(0, 256, size=(3, 64, 64, 3), dtype=np.uint8)
    expected = image_processor()([Image.fromarray(image) for image in images], return_tensors="pt")["pixel_values"]
    assert torch.allclose(normalise(torch.from_numpy(images)), expected, atol=1e-5)
