"""Garbage filters of the reference code's tree cleaning, applied to each node's new sentence.

A child whose sentence contains Korean, Japanese kana, Cyrillic or emoji characters, repeated
``&nbsp;``, more than five line breaks, or degenerate repetition (a word six times in a row, one
character eleven times in a row) is dropped with its whole subtree; a sentence under four characters
is not scored (and dropped) either, except an empty final node, which only marks the end of the
response (the model emitted end-of-sequence right after its last sentence).
"""

from __future__ import annotations

import re

_SPECIAL = re.compile(
    r"[\u3130-\u318F\uAC00-\uD7AF]"  # Korean
    r"|[\U0001F600-\U0001F64F\U0001F300-\U0001F5FF\U0001F680-\U0001F6FF\U0001F700-\U0001F77F]"  # emoji
    r"|[\u0400-\u04FF]"  # Cyrillic
    r"|[\u3040-\u309F\u30A0-\u30FF]"  # Japanese kana
    r"|(&nbsp;){2,}"
)
_REPEATED_WORD = re.compile(r"(\b\w+\b)(?:\s+\1){5,}")
_REPEATED_CHAR = re.compile(r"(.)(?:\s*\1){10}")
_LITERAL_REPEATS = ("ttttttttttt", "sssssssssss", ", , , , , , , , , , , , ,", "''''''''''")
MIN_CHARS = 4
MAX_NEWLINES = 5


def garbage_reason(text: str) -> str | None:
    """Why a sentence is garbage (``foreign_or_emoji``, ``newlines``, ``repetition``), or None."""
    if _SPECIAL.search(text):
        return "foreign_or_emoji"
    if text.count("\n") > MAX_NEWLINES:
        return "newlines"
    if _REPEATED_WORD.search(text) or _REPEATED_CHAR.search(text) or any(p in text for p in _LITERAL_REPEATS):
        return "repetition"
    return None


def drop_reason(text: str, final: bool) -> str | None:
    """Why a node is dropped before scoring, or None if it is scored (or is an end marker)."""
    reason = garbage_reason(text)
    if reason:
        return reason
    stripped = text.strip()
    if final and not stripped:
        return None
    if len(stripped) < MIN_CHARS:
        return "short"
    return None
