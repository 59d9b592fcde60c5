"""VQA accuracy for VizWiz, as the official VizWiz-VQA evaluation (``VQAEval`` of the VizWiz API) scores it.

Official rule (the default): only the **prediction** is normalised: new lines and tabs become blanks,
stripped, then ``processPunctuation`` (each mark of ``;/[]"{}()=+\\_-><@`,?!`` is removed where it
touches a blank, or everywhere when the text has a "digit,digit", else it becomes a blank; periods not
before a digit removed) and ``processDigitArticle`` (lower-case, number words zero..ten -> digits,
"none" -> "0", articles dropped, contractions restored). The human answers are compared **raw**.
Accuracy = mean over the human answers of min(1, matches among the other answers / 3).

``rule="lmms_eval"``: lmms-eval's ``vizwiz_vqa/utils.py`` instead runs the EvalAI answer processor (MMF,
LLaVA ``m4c_evaluator.py``: also drops "," and "?" first and splits "'s") on the prediction **and** the
human answers, which scores raw answers higher.
"""

from __future__ import annotations

import re

_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've",
    "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's",
    "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
    "mightve": "might've", "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at",
    "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd", "someoned've": "someone'd've",
    "someone'dve": "someone'd've", "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've", "somethingll": "something'll",
    "thats": "that's", "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas",
    "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't",
    "whatll": "what'll", "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's",
    "whered": "where'd", "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll",
    "whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
    "youve": "you've",
}
_NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
            "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = ("a", "an", "the")
# The original pattern (with its "(?!<=" typo: a look-ahead, not a look-behind) and its call
# ``sub("", text, re.UNICODE)``, which passes re.UNICODE (32) as the count: at most 32 periods go.
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_PERIOD_STRIP_COUNT = int(re.UNICODE)
_COMMA_STRIP = re.compile(r"(?<=\d)(\,)+(?=\d)")
_PUNCTUATIONS = (";", r"/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",",
                 "?", "!")


def _punctuation(text: str) -> str:
    out = text
    for p in _PUNCTUATIONS:
        if (p + " " in text or " " + p in text) or _COMMA_STRIP.search(text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, _PERIOD_STRIP_COUNT)


def _digits_and_articles(text: str) -> str:
    words = [_NUMBERS.get(word, word) for word in text.lower().split()]
    words = [word for word in words if word not in _ARTICLES]
    return " ".join(_CONTRACTIONS.get(word, word) for word in words)


def normalize_answer(text: str) -> str:
    """EvalAI's answer processor (lmms-eval applies it to prediction and human answers)."""
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return _digits_and_articles(_punctuation(text))


# The official VizWiz evaluation's own "digit,digit" test (EvalAI's differs: "(?<=\d)(\,)+(?=\d)").
_VIZWIZ_COMMA_STRIP = re.compile(r"(\d)(\,)(\d)")
RULES = ("official", "lmms_eval")


def normalize_prediction(text: str) -> str:
    """The official VizWiz evaluation's normalisation of a prediction (its human answers stay raw)."""
    text = text.replace("\n", " ").replace("\t", " ").strip()
    out = text
    for p in _PUNCTUATIONS:
        if (p + " " in text or " " + p in text) or _VIZWIZ_COMMA_STRIP.search(text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _digits_and_articles(_PERIOD_STRIP.sub("", out, _PERIOD_STRIP_COUNT))


def vqa_accuracy(prediction: str | None, human_answers: list[str], rule: str = "official") -> float:
    """Accuracy in [0, 1] of one prediction against the human answers (leave-one-out, min(matches / 3, 1))."""
    if prediction is None or not human_answers:
        return 0.0
    if rule == "lmms_eval":
        predicted = normalize_answer(prediction)
        humans = [normalize_answer(answer) for answer in human_answers]
    else:
        predicted, humans = normalize_prediction(prediction), list(human_answers)
    scores = []
    for i in range(len(humans)):
        matches = sum(1 for j, other in enumerate(humans) if j != i and other == predicted)
        scores.append(min(1.0, matches / 3))
    return sum(scores) / len(scores)
