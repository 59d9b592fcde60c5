"""The official scoring code, ported line by line where it needs a network or a whole pipeline, run side by
side with the scorers on generated answers full of edge cases (missing, empty, markdown, lower-case
letters, "The answer is (B)", numbers as words, ...). MME and VizWiz have theirs in their own test files.
"""

import random as rd
import re
import string

import pytest

from csr_compute.evaluation.scorers.choice import SQA_OPTIONS, scienceqa_correct
from csr_compute.evaluation.scorers.mmbench import Row, circular_eval
from csr_compute.evaluation.scorers.pope import pope_metrics

EDGE_ANSWERS = [
    "", "A", "B", "C", "D", "E", "a", "b", "A.", "B,", "(C)", "(D).", "C)", "Answer: B", "The answer is (B)",
    "The answer is B.", "The answer is C. The answer is D.", "B. cat", "C. blue", "I think it is A", "A cat",
    "cat", "a dog and a cat", "**B**", "B\n", "  C  ", "Yes", "No", "no.", "Not really", "yes, there is",
    "Maybe", "No, there is not.", "There is no dog.", "There is a dog.", "two", "2", "none", "Unanswerable",
    "E. none of them", "D:", ":A", "Failed to obtain answer via API",
]


# --- MMBench: lmms-eval lmms_eval/tasks/mmbench/mmbench_evals.py (commit 161c7a17), MMBench_Evaluator ---------
# Ported with dicts for pandas rows (a NaN option is None; every row has the columns A-D, so `ch in item`
# counts the columns, as on a DataFrame row) and no judge (get_chat_response returns its failure string).

class OfficialMMBench:
    def can_infer_option(self, answer, num_choice=5):
        choices = string.ascii_uppercase[:num_choice]
        if "Failed to obtain answer via API" in answer:
            return False

        def count(splits, choices="ABCD", prefix="", suffix=""):
            cnt = 0
            for c in choices:
                if prefix + c + suffix in splits:
                    cnt += 1
            return cnt

        splits = [x.strip() for x in answer.split()]
        if count(splits, choices) == 1:
            for ch in choices:
                if "A" in splits and len(splits) > 3:
                    break
                if ch in splits:
                    return ch
        tups = [("", "."), ("", ","), ("", ":"), ("", ")"), ("", ")."), ("(", ")"), ("(", ")."), (":", ""), (":", ","),
                (":", "."), (":", ")"), (":", ").")]
        for tup in tups:
            if count(splits, choices, prefix=tup[0], suffix=tup[1]) == 1:
                for ch in choices:
                    if tup[0] + ch + tup[1] in splits:
                        return ch
        return False

    def can_infer_text(self, answer, choices):
        answer = answer.lower()
        for k in choices:
            choices[k] = str(choices[k]).lower()
        cands = []
        for k in choices:
            if choices[k] in answer:
                cands.append(k)
        if len(cands) == 1:
            return cands[0]
        return False

    def can_infer(self, answer, choices):
        copt = self.can_infer_option(answer)
        return copt if copt else self.can_infer_text(answer, choices)

    def build_choices(self, item):
        return {ch: item[ch] for ch in "ABCD" if item[ch] is not None}

    def prefetch_answer(self, item):
        return self.can_infer(item["prediction"], self.build_choices(item))

    def extract_answer_from_item(self, item):
        retry = 3
        choices = self.build_choices(item)
        ret = self.can_infer(item["prediction"], choices)
        if ret:
            return ret, item["prediction"]
        while retry:
            retry -= 1  # get_chat_response: "Failed to obtain answer via API" (no judge)
            if retry == 0:
                num_options = sum([ch in item for ch in "ABCD"])
                if num_options >= 2:
                    chars = string.ascii_uppercase[:num_options]
                    chars = chars + "E"
                    num_options += 1
                    tmp = rd.randint(0, num_options - 1)
                    return chars[tmp], "Failed to predict, thus randomly generate one. "

    def eval_sub_data(self, sub_data, answer_map):
        lt = len(sub_data)
        GT, PRED = [], []
        for i in range(lt):
            item = sub_data[i]
            idx = item["index"]
            GT.append(answer_map[idx])
            PRED.append(self.prefetch_answer(item))
            if PRED[-1] and (GT[-1] != PRED[-1]):
                return 0
        for i in range(lt):
            if PRED[i]:
                continue
            else:
                ret, _ = self.extract_answer_from_item(sub_data[i])
                PRED[i] = ret
                if PRED[i] != GT[i]:
                    return 0
        return 1

    def eval_result(self, data):
        rd.seed(2680)
        data = sorted(data, key=lambda d: d["index"])
        for d in data:
            d["prediction"] = str(d["prediction"])
        answer_map = {d["index"]: d["answer"] for d in data}
        result = {}
        for item_main in [d for d in data if d["index"] < int(1e6)]:
            idx = item_main["index"]
            sub_data = [d for d in data if d["index"] % int(1e6) == idx]
            result[idx] = self.eval_sub_data(sub_data, answer_map)
        return result


def generated_mmbench(seed: int, questions: int):
    """Questions of 2-4 options, each rotated once per option, with answers drawn from the edge cases."""
    draw = rd.Random(seed)
    words = ["cat", "dog", "bird", "blue", "two", "none", "red car", "a"]
    rows = []
    for q in range(questions):
        n = draw.randint(2, 4)
        texts = draw.sample(words, n)
        right = draw.randrange(n)
        for k in range(n):
            rotated = texts[k:] + texts[:k]
            options = {L: (rotated[i] if i < n else None) for i, L in enumerate("ABCD")}
            answer = "ABCD"[rotated.index(texts[right])]
            prediction = draw.choice(EDGE_ANSWERS + [answer] * 60 + [texts[right]] * 15 + [None] * 10)
            rows.append({"index": q + k * 1_000_000, "question": f"Q{q}", **options, "answer": answer,
                         "prediction": prediction})
    return rows


@pytest.mark.parametrize("seed", range(5))
def test_mmbench_equals_the_official_evaluator_with_its_random_draws(seed):
    rows = generated_mmbench(seed, questions=40)
    groups = {}
    for r in rows:
        options = {L: r[L] for L in "ABCD" if r[L] is not None}
        groups.setdefault(r["index"] % 1_000_000, []).append(
            Row(index=r["index"], answer=r["answer"], options=options, options_in_order=list(options.values()),
                question=r["question"], prediction=r["prediction"]))
    ours = circular_eval(groups, num_option_columns=4, ask_judge=None)
    # The official pipeline has a prediction for every row: a missing answer is an empty one there.
    official = OfficialMMBench().eval_result([{**r, "prediction": r["prediction"] or ""} for r in rows])
    assert {k: int(v) for k, v in ours.hits.items()} == official
    assert ours.random_rows > 0  # the draws were exercised


# --- POPE: LLaVA llava/eval/eval_pope.py (commit c121f043), eval_pope ---------------------------------------

def official_pope(answers, labels):
    label_list = list(labels)
    for answer in answers:
        text = answer["text"]
        if text.find(".") != -1:
            text = text.split(".")[0]
        text = text.replace(",", "")
        words = text.split(" ")
        if "No" in words or "not" in words or "no" in words:
            answer["text"] = "no"
        else:
            answer["text"] = "yes"
    label_list = [0 if label == "no" else 1 for label in label_list]
    pred_list = [0 if answer["text"] == "no" else 1 for answer in answers]
    TP, TN, FP, FN = 0, 0, 0, 0
    for pred, label in zip(pred_list, label_list):
        if pred == 1 and label == 1:
            TP += 1
        elif pred == 1 and label == 0:
            FP += 1
        elif pred == 0 and label == 0:
            TN += 1
        elif pred == 0 and label == 1:
            FN += 1
    precision = float(TP) / float(TP + FP)
    recall = float(TP) / float(TP + FN)
    return {"TP": TP, "FP": FP, "TN": TN, "FN": FN, "accuracy": (TP + TN) / (TP + TN + FP + FN),
            "precision": precision, "recall": recall, "f1": 2 * precision * recall / (precision + recall),
            "yes_ratio": pred_list.count(1) / len(pred_list)}


@pytest.mark.parametrize("seed", range(5))
def test_pope_equals_eval_pope_on_edge_cases(seed):
    draw = rd.Random(seed)
    labels = [draw.choice(["yes", "no"]) for _ in range(200)]
    texts = [draw.choice(EDGE_ANSWERS) for _ in labels]
    ours = pope_metrics(zip(labels, texts))
    official = official_pope([{"text": t} for t in texts], labels)
    for name in ("TP", "FP", "TN", "FN"):
        assert ours[name] == official[name], name
    for name in ("accuracy", "precision", "recall", "f1", "yes_ratio"):
        assert ours[name] == pytest.approx(100 * official[name]), name


# --- ScienceQA: LLaVA llava/eval/eval_science_qa.py (commit c121f043), the parse and get_pred_idx -----------

def official_scienceqa_pred_idx(pred_text, choices, options=("A", "B", "C", "D", "E")):
    options = list(options)
    if pred_text in options:
        answer = pred_text
    elif len(pred_text) >= 3 and pred_text[0] in options and pred_text[1:3] == ". ":
        answer = pred_text[0]
    else:
        pattern = re.compile(r"The answer is ([A-Z]).")
        res = pattern.findall(pred_text)
        if len(res) == 1:
            answer = res[0]
        else:
            answer = "FAILED"
    if answer in options[:len(choices)]:
        return options.index(answer)
    return -1


@pytest.mark.parametrize("choices", [2, 3, 5])
def test_scienceqa_equals_eval_science_qa_on_edge_cases(choices):
    for text in EDGE_ANSWERS + ["The answer is E.", "The answer is Z.", "E", "The answer is A"]:
        for answer in range(choices):
            official = official_scienceqa_pred_idx(text, ["x"] * choices) == answer
            assert scienceqa_correct(text, answer, choices) == official, (text, answer)
    assert len(SQA_OPTIONS) == 5


# --- GQA: the official eval.py (with LLaVA's patch for testdev: no scene graphs or choices needed) ------------
# Its main loop, ported: accuracy, binary/open, per structural/semantic type, words and steps, validity and
# plausibility, distribution and consistency; predictions as LLaVA's convert_gqa_for_eval.py writes them.

def official_gqa(questions, predictions, choices, consistency):
    from collections import defaultdict

    def toScore(b):
        return float(1 if b else 0)

    def avg(values):
        return 0 if len(values) == 0 else float(sum(values)) / len(values)

    def belongs(element, group, question):
        if "Common" in question["types"]["detailed"]:
            group = ["color", "material", "shape"]
        return element in group

    def getStepsNum(question):
        return len([c for c in question["semantic"] if not (any([o in "{}: {}".format(c["operation"], c["argument"])
                                                                 for o in ["exist", "query: name", "choose name"]]))])

    scores = {"accuracy": [], "binary": [], "open": [], "validity": [], "plausibility": [], "consistency": [],
              "accuracyPerStructuralType": defaultdict(list), "accuracyPerSemanticType": defaultdict(list),
              "accuracyPerLength": defaultdict(list), "accuracyPerSteps": defaultdict(list)}
    dist = {"gold": defaultdict(lambda: defaultdict(int)), "predicted": defaultdict(lambda: defaultdict(int))}
    for qid, question in questions.items():
        if question["isBalanced"]:
            gold = question["answer"]
            predicted = predictions[qid]
            correct = predicted == gold
            score = toScore(correct)
            scores["accuracy"].append(score)
            scores["accuracyPerLength"][len(question["question"].split())].append(score)
            scores["accuracyPerSteps"][getStepsNum(question)].append(score)
            scores["accuracyPerStructuralType"][question["types"]["structural"]].append(score)
            scores["accuracyPerSemanticType"][question["types"]["semantic"]].append(score)
            scores["open" if question["types"]["structural"] == "query" else "binary"].append(score)
            scores["validity"].append(toScore(belongs(predicted, choices[qid]["valid"], question)))
            scores["plausibility"].append(toScore(belongs(predicted, choices[qid]["plausible"], question)))
            globalGroup = question["groups"]["global"]
            if globalGroup is not None:
                dist["gold"][globalGroup][gold] += 1
                dist["predicted"][globalGroup][predicted] += 1
            if consistency:
                inferredQuestions = [eid for eid in question["entailed"] if eid != qid]
                if correct and len(inferredQuestions) > 0:
                    scores["consistency"].append(avg([toScore(predictions[eid] == questions[eid]["answer"])
                                                      for eid in inferredQuestions]))
    sumScore, sumOverall = 0, 0
    for group in dist["gold"]:
        score, overall = 0, 0
        for ans in dist["gold"][group]:
            e = dist["gold"][group][ans]
            o = dist["predicted"][group].get(ans, 0)
            score += (float(o - e) ** 2) / e
            overall += dist["gold"][group][ans]
        sumScore += score * overall
        sumOverall += overall
    result = {k: avg(scores[k]) * 100 for k in ("accuracy", "binary", "open", "validity", "plausibility", "consistency")}
    result["distribution"] = float(sumScore) / sumOverall / 100
    for key, name in (("accuracyPerStructuralType", "structural"), ("accuracyPerSemanticType", "semantic"),
                      ("accuracyPerLength", "words"), ("accuracyPerSteps", "steps")):
        for t, values in scores[key].items():
            result[f"{name}/{t}"] = avg(values) * 100
    return result


@pytest.mark.parametrize("seed", range(3))
def test_gqa_equals_eval_py_on_generated_questions(seed, tmp_path):
    import json

    from csr_compute.evaluation.answers import match_answers, read_answers
    from csr_compute.evaluation.registry import get_benchmark, load_dataset
    from csr_compute.evaluation.scoring import score

    draw = rd.Random(seed)
    vocab = ["red", "blue", "yes", "no", "left", "right", "cat", "metal"]
    ids = [f"q{k}" for k in range(60)]
    questions, choices, texts = {}, {}, {}
    for qid in ids:
        program = [{"operation": draw.choice(["select", "relate", "filter color", "exist", "query", "choose name"]),
                    "argument": draw.choice(["name", "cat (3)", "?", "color"])} for _ in range(draw.randint(1, 4))]
        questions[qid] = {
            "imageId": "n1", "question": " ".join(["word"] * draw.randint(3, 7)) + "?", "answer": draw.choice(vocab),
            "isBalanced": draw.random() < 0.6,
            "types": {"structural": draw.choice(["query", "verify", "choose", "logical", "compare"]),
                      "semantic": draw.choice(["attr", "obj", "rel", "cat", "global"]),
                      "detailed": draw.choice(["colorQuery", "sameMaterialCommon", "existC"])},
            "semantic": program, "groups": {"global": draw.choice([None, "color", "animal"]), "local": None},
            "entailed": draw.sample(ids, draw.randint(0, 3))}
        choices[qid] = {"valid": draw.sample(vocab, 4), "plausible": draw.sample(vocab, 2)}
        texts[qid] = draw.choice([questions[qid]["answer"], questions[qid]["answer"].capitalize() + ".", "Red",
                                  draw.choice(vocab), "The cat.", "metal..", ""])
    (tmp_path / "testdev_all_questions.json").write_text(json.dumps(questions))
    (tmp_path / "testdev_choices.json").write_text(json.dumps(choices))
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"question_id": q, "text": t}) + "\n" for q, t in texts.items()))
    benchmark = get_benchmark("gqa")
    dataset = load_dataset(benchmark, tmp_path, options={"questions": "all"})
    ours = score(benchmark, dataset, match_answers(dataset, read_answers(answers)))
    # LLaVA's convert_gqa_for_eval.py: text.rstrip('.').lower()
    official = official_gqa(questions, {q: t.rstrip(".").lower() for q, t in texts.items()}, choices, True)
    for name, value in official.items():
        assert ours[name] == pytest.approx(value), name
    assert {k for k in ours if "/" in k} == {k for k in official if "/" in k}


# --- MM-Vet: yuweihao/MM-Vet mm-vet_evaluator.py (commit acde843e), load_metadata + export_result -----------
# Ported without pandas or the rounding to display decimals; the capability sets are compared as sets, since
# the evaluator names a combination by joining a Python set (its order varies with PYTHONHASHSEED).

def official_mmvet(data, grade_results, num_run):
    from collections import Counter

    import numpy as np

    counter = Counter()
    cap_set_list, cap_set_counter = [], []
    for _id, value in data.items():
        cap = set(value["capability"])
        counter.update(cap)
        if cap not in cap_set_list:
            cap_set_list.append(cap)
            cap_set_counter.append(1)
        else:
            cap_set_counter[cap_set_list.index(cap)] += 1
    cap_socres = {k: [0.0] * num_run for k in list(counter) + ["total"]}
    counter["total"] = len(data)
    cap_socres2 = {frozenset(c): [0.0] * num_run for c in cap_set_list}
    counter2 = {frozenset(c): n for c, n in zip(cap_set_list, cap_set_counter)}
    for k, v in grade_results.items():
        for i in range(num_run):
            score = v["score"][i]
            caps = set(data[k]["capability"])
            for c in caps:
                cap_socres[c][i] += score
            cap_socres["total"][i] += score
            cap_socres2[frozenset(caps)][i] += score
    for k, v in cap_socres.items():
        cap_socres[k] = np.array(v) / counter[k] * 100
    std = cap_socres["total"].std()
    runs = list(cap_socres["total"])
    means = {k: v.mean() for k, v in cap_socres.items()}
    combos = {k: np.mean(np.array(v) / counter2[k] * 100) for k, v in cap_socres2.items()}
    return means, combos, std, runs


@pytest.mark.parametrize("seed", range(3))
def test_mmvet_scores_equal_the_official_evaluator_over_several_runs(seed):
    from csr_compute.evaluation.scorers.judged import mmvet_metrics, mmvet_passes

    draw = rd.Random(seed)
    caps = ["rec", "ocr", "know", "gen", "spat", "math"]
    data = {f"v1_{k}": {"capability": draw.sample(caps, draw.randint(1, 3))} for k in range(40)}
    runs = 3
    grades = {k: {"score": [draw.choice([0.0, 0.3, 0.5, 1.0]) for _ in range(runs)]} for k in data}
    ours = mmvet_passes([mmvet_metrics([(data[k]["capability"], grades[k]["score"][i]) for k in data])
                         for i in range(runs)])
    means, combos, std, totals = official_mmvet(data, grades, runs)
    assert ours["total"] == pytest.approx(means["total"]) and ours["total_sd"] == pytest.approx(std)
    assert [ours[f"total/pass_{i}"] for i in range(runs)] == pytest.approx(totals)
    for cap in caps:
        if cap in means:
            assert ours[f"capability/{cap}"] == pytest.approx(means[cap]), cap
    assert {frozenset(k.split("/", 1)[1].split("_")): v for k, v in ours.items() if k.startswith("combination/")} \
        == pytest.approx(combos)
