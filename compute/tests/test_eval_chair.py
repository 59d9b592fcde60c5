"""CHAIR: word mapping as LisaAnne/Hallucination's chair.py does it, and fixture metrics computed by hand."""

from pathlib import Path

import pytest

from csr_compute.evaluation.answers import match_answers, read_answers
from csr_compute.evaluation.datafiles import DataError
from csr_compute.evaluation.registry import get_benchmark, load_dataset
from csr_compute.evaluation.scorers.chair import COCO_SYNONYMS, Vocabulary
from csr_compute.evaluation.scorers.singularize import singularize
from csr_compute.evaluation.scorers.tokenize import word_tokenize
from csr_compute.evaluation.scoring import score

FIXTURES = Path(__file__).parent / "fixtures" / "eval"


def score_fixture(name: str, folder: str) -> dict:
    benchmark = get_benchmark(name)
    dataset = load_dataset(benchmark, FIXTURES / folder)
    return score(benchmark, dataset, match_answers(dataset, read_answers(FIXTURES / folder / "answers.jsonl")))


@pytest.mark.parametrize("word, singular", [
    ("dogs", "dog"), ("people", "person"), ("women", "woman"), ("children", "child"), ("knives", "knife"),
    ("buses", "bus"), ("boxes", "box"), ("giraffes", "giraffe"), ("mice", "mouse"), ("sheep", "sheep"),
    ("scissors", "scissors"), ("skis", "ski"),
    # Pattern's quirks, which are part of the metric:
    ("glass", "glas"), ("bus", "bu"), ("ties", "ty"), ("this", "thi"), ("is", "is"), ("collies", "collies"),
])
def test_singularize_matches_pattern(word, singular):
    assert singularize(word) == singular


def test_tokenize_splits_punctuation_like_nltk():
    assert word_tokenize("a dog's bowl, two cats. the man isn't here!") == [
        "a", "dog", "'s", "bowl", ",", "two", "cats", ".", "the", "man", "is", "n't", "here", "!"]
    assert word_tokenize("a hot-dog (on a plate); 1,000 birds") == [
        "a", "hot-dog", "(", "on", "a", "plate", ")", ";", "1,000", "birds"]


@pytest.mark.parametrize("caption, tokens", [
    # Punkt ends a sentence at a period followed by punctuation, so the period leaves the word
    # (expected tokens worked out from NLTK's Punkt rules: a period-final word that is no known
    # abbreviation is a sentence break; the break falls right after the period).
    ('a dog." a cat', ["a", "dog", ".", "''", "a", "cat"]),
    ("(a dog.) a cat", ["(", "a", "dog", ".", ")", "a", "cat"]),
    ("a **dog.** a cat", ["a", "*", "*", "dog", ".", "*", "*", "a", "cat"]),
    ("a dog!\" the cat", ["a", "dog", "!", "''", "the", "cat"]),
    # ... but not inside a word, nor after an abbreviation of the English Punkt model, nor after a number
    ("a dog.a cat", ["a", "dog.a", "cat"]),
    ("mr. smith and his dog. the cat", ["mr.", "smith", "and", "his", "dog", ".", "the", "cat"]),
    ("there are 2. dogs", ["there", "are", "2.", "dogs"]),
    ("a dog... a cat", ["a", "dog", "...", "a", "cat"]),
])
def test_sentences_end_where_punkt_ends_them(caption, tokens):
    assert word_tokenize(caption) == tokens


def test_an_object_before_a_closing_quote_or_bracket_is_found():
    coco = Vocabulary.from_file(COCO_SYNONYMS)
    # The old splitter (a break only before white space) kept "dog." and "cat." glued and missed them.
    assert coco.mentions('He said "look at the dog." A cat (or a cat.) sits on the **bench.**') == [
        ("dog", "dog"), ("cat", "cat"), ("cat", "cat"), ("bench", "bench")]


def test_object_mentions_follow_the_official_rules():
    coco = Vocabulary.from_file(COCO_SYNONYMS)
    assert coco.mentions("A man and his dogs sit on a bench.") == [("man", "person"), ("dog", "dog"), ("bench", "bench")]
    assert coco.mentions("A teddy bear next to a hot dog.") == [("teddy bear", "teddy bear"), ("hot dog", "hot dog")]
    assert coco.mentions("A baby elephant and a passenger train.") == [("elephant", "elephant"), ("train", "train")]
    assert coco.mentions("The seat of the toilet.") == [("toilet", "toilet")]  # a toilet seat is not a chair
    assert coco.mentions("Two wine glasses and a glass.") == [("wine glass", "wine glass")]
    assert coco.mentions("A bus and two buses.") == [("bus", "bus")]  # "bus" singularises to "bu"
    # " motor bike" keeps its leading space in the official list, so "motor bike" is no mention; "motorbike" is
    assert coco.mentions("a motor bike and a motorbike") == [("motorbike", "motorcycle")]


def test_coco_chair_matches_hand_computation():
    m = score_fixture("chair", "chair")
    # Ground truth: image 1 {person, dog} (+ "man", "puppy" from its caption), 2 {toilet}, 3 {car, stop sign
    # from the caption "...bus stop sign"}, 4 {} . Captions: 1 mentions person, dog, bench*, cat*; 2 toilet
    # ("seat" dropped, "bus" -> "bu"); 3 teddy bear*, car, hot dog*, bus*; 4 missing (* = hallucinated).
    assert m["CHAIR_S"] == pytest.approx(75.0)  # 1, 3 and the missing 4 out of 4
    assert m["CHAIR_I"] == pytest.approx(500 / 9)  # 5 hallucinated of 9 mentions
    assert m["recall"] == pytest.approx(80.0)  # covered 2 + 1 + 1 of 2 + 1 + 2 ground-truth objects
    assert (m["object_mentions"], m["hallucinated_mentions"], m["missing_answers"]) == (9, 5, 1)


def test_toy_chair_with_custom_synonyms_and_no_reference_captions():
    m = score_fixture("toy_chair", "toy_chair")
    # 1 {fork}: fork, knife*; 2 {cup, knife}: mug -> cup; 3 {fork, knife, cup}: utensil, blade, blade
    assert m["CHAIR_S"] == pytest.approx(100 / 3)
    assert m["CHAIR_I"] == pytest.approx(100 / 6)  # a repeated mention counts twice
    assert m["recall"] == pytest.approx(400 / 6)


def test_synonyms_without_spaces_are_rejected(tmp_path):
    for name in ("instances.json", "questions.jsonl"):
        (tmp_path / name).write_text((FIXTURES / "toy_chair" / name).read_text())
    (tmp_path / "synonyms.txt").write_text("fork,utensil\n")
    with pytest.raises(DataError, match=r"synonyms.txt line 1: entry 'fork,utensil' contains a comma"):
        load_dataset(get_benchmark("toy_chair"), tmp_path)


def test_category_missing_from_synonyms_is_named(tmp_path):
    for name in ("instances.json", "questions.jsonl"):
        (tmp_path / name).write_text((FIXTURES / "toy_chair" / name).read_text())
    (tmp_path / "synonyms.txt").write_text("fork, utensil\nknife, blade\n")
    with pytest.raises(DataError, match=r"object 'cup' is not in the synonyms list"):
        load_dataset(get_benchmark("toy_chair"), tmp_path)


def test_question_for_an_unknown_image_is_named(tmp_path):
    for name in ("instances.json", "synonyms.txt"):
        (tmp_path / name).write_text((FIXTURES / "toy_chair" / name).read_text())
    (tmp_path / "questions.jsonl").write_text('{"question_id": 9, "image": "scene_9.png", "text": "Describe."}\n')
    with pytest.raises(DataError, match=r"questions.jsonl line 1: field 'image': expected a file_name listed in "
                                        r"instances.json 'images', got \"scene_9.png\""):
        load_dataset(get_benchmark("toy_chair"), tmp_path)


def test_custom_synonyms_that_singularise_are_reported(tmp_path, capsys):
    for name in ("instances.json", "questions.jsonl"):
        (tmp_path / name).write_text((FIXTURES / "toy_chair" / name).read_text())
    (tmp_path / "synonyms.txt").write_text("fork, utensil\nknife, blade\ncup, glass\n")
    load_dataset(get_benchmark("toy_chair"), tmp_path)
    err = capsys.readouterr().err
    assert "synonym 'glass'" in err and "singularises to 'glas'" in err
    assert "'fork'" not in err and "'utensil'" not in err


def test_chair_reports_per_caption_counts_and_the_standard_error_of_chair_i():
    from csr_compute.evaluation.scorers.chair import chair_metrics

    coco = Vocabulary.from_file(COCO_SYNONYMS)
    captions = [({"dog"}, "A dog and a cat."),           # 2 mentions, 1 hallucinated
                ({"dog", "cat"}, "A dog sits next to a cat."),  # 2 mentions, 0 hallucinated
                ({"car"}, "A car."),                     # 1 mention, 0 hallucinated
                ({"car"}, None)]                         # missing: counted in CHAIR_S, not in the per-caption means
    m = chair_metrics(coco, captions)
    assert m["CHAIR_I"] == pytest.approx(100 * 1 / 5)
    assert m["mentions_per_caption"] == pytest.approx(5 / 3)
    assert m["hallucinated_per_caption"] == pytest.approx(1 / 3)
    assert m["words_per_caption"] == pytest.approx((5 + 7 + 2) / 3)
    # delta method by hand: r = 0.2; residuals h - r*m = 0.6, -0.4, -0.2; sum of squares 0.56 / (n-1) = 0.28
    assert m["CHAIR_I_se"] == pytest.approx(100 * (0.28 / 3) ** 0.5 / (5 / 3))


def test_repeating_a_true_object_lowers_chair_i_but_not_chair_i_distinct():
    from csr_compute.evaluation.scorers.chair import chair_metrics

    coco = Vocabulary.from_file(COCO_SYNONYMS)
    once = chair_metrics(coco, [({"dog"}, "A dog and a cat.")])
    again = chair_metrics(coco, [({"dog"}, "A dog and a cat. A dog. A dog.")])
    assert (once["CHAIR_I"], again["CHAIR_I"]) == pytest.approx((50.0, 25.0))  # 1 of 2 mentions, then 1 of 4
    assert once["CHAIR_I_distinct"] == again["CHAIR_I_distinct"] == pytest.approx(50.0)  # cat of {dog, cat}
    assert (once["repeated_per_caption"], again["repeated_per_caption"]) == (0.0, 2.0)
