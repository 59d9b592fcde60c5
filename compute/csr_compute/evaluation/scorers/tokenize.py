"""Word tokenisation as ``nltk.word_tokenize`` does it: Punkt sentences, then NLTK's Treebank words.

CHAIR's official code (``LisaAnne/Hallucination`` ``utils/chair.py``) runs
``nltk.word_tokenize(caption.lower())``. Where the sentences end decides whether a final period is split
from its word ("dog." -> "dog", "."), so it decides whether an object is found: Punkt also ends a
sentence at ``dog." a``, ``(a dog.)`` or ``dog.**``, where a period is followed by punctuation rather
than white space. This module therefore runs NLTK's own code (``PunktSentenceTokenizer`` and
``NLTKWordTokenizer``, pinned in requirements.txt) instead of re-implementing it.

Why not ``nltk.word_tokenize`` itself: it loads the trained English Punkt model, which is not in the
NLTK package but a separate download from the network (``nltk.download('punkt_tab')``), unavailable
on offline clusters and not on a package registry. The parts of that model that can change a
lower-cased caption's tokens ship in ``data/``: its abbreviation list (so "mr." stays one token, as in
NLTK) and its collocations. Its other two parts only matter for text with capitals (sentence starters)
or for whether a number or single letter before a lower-case word ends a sentence (orthographic
context); neither changes a word that is not a number or a single letter, so on CHAIR's lower-cased
captions the tokens that can name an object are the same as with the full model.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from nltk.tabdata import PunktDecoder
from nltk.tokenize.destructive import NLTKWordTokenizer
from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

_DATA = Path(__file__).resolve().parents[1] / "data"
PUNKT_ABBREVIATIONS = _DATA / "punkt_english_abbrev_types.txt"
PUNKT_COLLOCATIONS = _DATA / "punkt_english_collocations.txt"


@lru_cache(maxsize=1)
def _tokenizers() -> tuple[PunktSentenceTokenizer, NLTKWordTokenizer]:
    params = PunktParameters()
    decoder = PunktDecoder()
    # Read as NLTK's load_punkt_params reads the punkt_tab files, so the sets are identical.
    with open(PUNKT_ABBREVIATIONS, encoding="utf-8") as f:
        params.abbrev_types = decoder.txt2set(f)
    with open(PUNKT_COLLOCATIONS, encoding="utf-8") as f:
        params.collocations = set(decoder.tab2tups(f))
    return PunktSentenceTokenizer(params), NLTKWordTokenizer()


def sent_tokenize(text: str) -> list[str]:
    """Sentences as ``nltk.sent_tokenize`` splits lower-cased text."""
    return _tokenizers()[0].tokenize(text)


def word_tokenize(text: str) -> list[str]:
    """Tokens as ``nltk.word_tokenize`` gives them for lower-cased text."""
    sentences, words = _tokenizers()
    return [token for sentence in sentences.tokenize(text) for token in words.tokenize(sentence)]
