"""VizWiz VQA accuracy as the official VizWiz evaluation computes it (prediction normalised, humans raw), unanswerability."""

import re
from pathlib import Path

import pytest

from csr_compute.contract import SpecError
from csr_compute.evaluation.answers import match_answers, read_answers
from csr_compute.evaluation.datafiles import DataError
from csr_compute.evaluation.registry import get_benchmark, load_dataset
from csr_compute.evaluation.scorers.vqa import (_CONTRACTIONS, _NUMBERS, normalize_answer, normalize_prediction,
                                                vqa_accuracy)
from csr_compute.evaluation.scoring import score

FIXTURE = Path(__file__).parent / "fixtures" / "eval" / "vizwiz"


@pytest.mark.parametrize("raw, normal", [
    ("Soup.", "soup"), ("Unanswerable", "unanswerable"), ("Two", "2"), ("none", "0"), ("It's a dog!", "it 's dog"),
    ("dont know", "don't know"), ("3.5 inches", "3.5 inches"), ("The red/blue can", "red blue can"),
    ("yes, it is", "yes it is"),
])
def test_normalisation(raw, normal):
    assert normalize_answer(raw) == normal


class OfficialVizWizEval:
    """The accuracy part of ``VQAEval`` of the official VizWiz-VQA evaluation (vizwiz.org API, ``evaluate``,
    ``processPunctuation``, ``processDigitArticle``), ported line by line; the tables are the same as ours."""

    manualMap = dict(_NUMBERS)
    articles = ["a", "an", "the"]
    contractions = _CONTRACTIONS
    periodStrip = re.compile(r"(?!<=\d)(\.)(?!\d)")
    commaStrip = re.compile(r"(\d)(\,)(\d)")
    punct = [";", r"/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?",
             "!"]

    def processPunctuation(self, inText):
        outText = inText
        for p in self.punct:
            if (p + " " in inText or " " + p in inText) or (re.search(self.commaStrip, inText) is not None):
                outText = outText.replace(p, "")
            else:
                outText = outText.replace(p, " ")
        outText = self.periodStrip.sub("", outText, re.UNICODE)
        return outText

    def processDigitArticle(self, inText):
        outText = []
        tempText = inText.lower().split()
        for word in tempText:
            word = self.manualMap.setdefault(word, word)
            if word not in self.articles:
                outText.append(word)
        for wordId, word in enumerate(outText):
            if word in self.contractions:
                outText[wordId] = self.contractions[word]
        return " ".join(outText)

    def accuracy(self, resAns, answers):
        resAns = resAns.replace("\n", " ")
        resAns = resAns.replace("\t", " ")
        resAns = resAns.strip()
        resAns = self.processPunctuation(resAns)
        resAns = self.processDigitArticle(resAns)
        gtAcc = []
        for i, _ans in enumerate(answers):
            otherGTAns = [item for j, item in enumerate(answers) if i != j]
            matchingAns = [item for item in otherGTAns if item["answer"] == resAns]
            gtAcc.append(min(1, float(len(matchingAns)) / 3))
        return float(sum(gtAcc)) / len(gtAcc)


EDGE_PREDICTIONS = ["Soup.", "soup", "Tomato Soup!", "two", "2", "Two.", "none", "The can", "a can.", "can,",
                    "t-shirt", "T-Shirt", "dont know", "it's a dog", "1,000", "3.5", "  unanswerable\n", "Unanswerable.",
                    "unsuitable", "", "yes, it is", "(B)", "red/blue", "..."]
EDGE_HUMANS = [
    ["soup", "soup", "Soup", "tomato soup", "Tomato soup", "can", "can,", "unanswerable", "two", "2"],
    ["t-shirt", "t shirt", "tshirt", "T-shirt", "don't know", "dont know", "it's dog", "1,000", "1000", "3.5"],
    ["unanswerable"] * 4 + ["unsuitable"] * 3 + ["yes it is", "yes, it is", "b"],
    ["red blue", "red/blue", "red", "blue", "", "red blue", "0", "none", "2", "two"],
]


def test_accuracy_equals_the_official_evaluation_on_edge_cases():
    official = OfficialVizWizEval()
    for humans in EDGE_HUMANS:
        for prediction in EDGE_PREDICTIONS:
            expected = official.accuracy(prediction, [{"answer": a} for a in humans])
            assert vqa_accuracy(prediction, humans) == pytest.approx(expected), (prediction, humans)


@pytest.mark.parametrize("raw, normal", [
    ("Soup.", "soup"), ("It's a dog!", "it's dog"), ("red,blue", "red blue"), ("Two.", "2"), ("T-Shirt", "t shirt"),
])
def test_official_prediction_normalisation(raw, normal):
    assert normalize_prediction(raw) == normal


def test_leave_one_out_accuracy():
    humans = ["soup", "soup"] + ["tomato soup"] * 5 + ["can", "can", "unanswerable"]
    assert vqa_accuracy("soup", humans) == pytest.approx((2 * (1 / 3) + 8 * (2 / 3)) / 10)
    assert vqa_accuracy("tomato soup", humans) == pytest.approx(1.0)
    assert vqa_accuracy(None, humans) == 0.0
    # Human answers are compared raw: "Soup" (capital) is no match for the normalised "soup".
    assert vqa_accuracy("soup", ["Soup"] * 10) == 0.0
    assert vqa_accuracy("soup", ["Soup"] * 10, "lmms_eval") == 1.0


def test_fixture_accuracy_and_answer_types():
    benchmark = get_benchmark("vizwiz")
    dataset = load_dataset(benchmark, FIXTURE)
    m = score(benchmark, dataset, match_answers(dataset, read_answers(FIXTURE / "answers.jsonl")))
    # "Soup." -> "soup" 0.6; "Unanswerable" vs 8 x unanswerable 1.0; "Two" -> "2" vs raw {two, two, 2, 7 x 3}: only
    # the one "2" matches, (9 x 1/3 + 0) / 10 = 0.3; missing 0
    assert m["accuracy"] == pytest.approx(47.5)
    assert m["answer_type/other"] == pytest.approx(60.0)
    assert m["answer_type/unanswerable"] == pytest.approx(100.0)
    assert m["answer_type/number"] == pytest.approx(30.0)
    assert m["answer_type/yes_no"] == 0.0
    assert m["missing_answers"] == 1
    # Unanswerable = positive: truth (answerable 1, 0, 1, 1), predicted (0, 1, 0, 0): TP 1, FP 0, FN 0.
    assert m["unanswerable/f1"] == pytest.approx(100.0)
    assert m["unanswerable/average_precision"] == pytest.approx(100.0)


def test_lmms_eval_rule_is_an_option():
    benchmark = get_benchmark("vizwiz")
    dataset = load_dataset(benchmark, FIXTURE, options={"normalize": "lmms_eval"})
    m = score(benchmark, dataset, match_answers(dataset, read_answers(FIXTURE / "answers.jsonl")))
    assert m["accuracy"] == pytest.approx(62.5)  # "two" humans normalised to "2" too: 0.9
    with pytest.raises(SpecError, match=r"benchmark.normalize: expected official"):
        load_dataset(benchmark, FIXTURE, options={"normalize": "both"})


@pytest.mark.parametrize("actual, predicted", [
    ([1, 0, 0, 1, 0, 1], [1, 1, 0, 0, 0, 0]),
    ([1, 0, 0, 1, 0, 1], [0, 0, 0, 0, 0, 0]),
    ([1, 0, 0, 1, 0, 1], [1, 1, 1, 1, 1, 1]),
    ([0, 0, 1], [1, 0, 1]),
])
def test_unanswerability_ap_and_f1_equal_scikit_learn(actual, predicted):
    from sklearn.metrics import average_precision_score, f1_score

    from csr_compute.evaluation.benchmarks.vizwiz import average_precision

    # The official evaluate_unanswerability calls exactly these two on 1 - answerable.
    assert average_precision(actual, predicted) == pytest.approx(average_precision_score(actual, predicted))
    benchmark = get_benchmark("vizwiz")
    dataset = load_dataset(benchmark, FIXTURE)
    dataset.items = [type(dataset.items[0])(question_id=str(k), fields={}, truth={"answers": ["x"], "answer_type": "",
                                                                               "answerable": 1 - a})
                     for k, a in enumerate(actual)]
    m = score(benchmark, dataset, {str(k): "unanswerable" if p else "x" for k, p in enumerate(predicted)})
    assert m["unanswerable/f1"] == pytest.approx(100 * f1_score(actual, predicted, zero_division=0))
    assert m["unanswerable/average_precision"] == pytest.approx(100 * average_precision_score(actual, predicted))


def test_prompt_allows_unanswerable():
    benchmark = get_benchmark("vizwiz")
    item = load_dataset(benchmark, FIXTURE).items[0]
    assert item.question_id == "VizWiz_val_00000000"
    assert benchmark.prompt(item) == ("What is this?\nWhen the provided information is insufficient, respond with "
                                      "'Unanswerable'.\nAnswer the question using a single word or phrase.")


def test_questions_without_answers_say_why(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "val.json").write_text('[{"image": "VizWiz_val_00000000.jpg", "question": "What?"}]')
    with pytest.raises(DataError, match=r"val.json \[0\]: no human answers; the val split cannot be scored here"):
        load_dataset(get_benchmark("vizwiz"), tmp_path)
    with pytest.raises(SpecError, match=r"benchmark.split: expected one of \['val', 'train'\]"):
        load_dataset(get_benchmark("vizwiz"), tmp_path, split="test")  # test answers are private to EvalAI
