"""The toy world's fixed vocabulary: object kinds, their synonyms and shapes, colours, sizes, pairs.

These are rules of the world, not parameters: the judge, the benchmarks' ``synonyms.txt`` and the
trained models all depend on them, so changing anything here must bump ``WORLD_VERSION`` in
``config.py`` (a changed world must not reuse an old cache folder).

Every word here is a single lower-case token that appears nowhere in the instructions, so that a
word in a response names a kind exactly when it is a kind's name or synonym. Words are also left
unchanged by CHAIR's singulariser (which turns "bus" into "bu"), so the official scorer sees them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    name: str
    synonyms: tuple[str, ...]
    # 8x8 silhouette, "#" = filled; drawn scaled up, so kinds differ by shape, never by colour.
    bitmap: tuple[str, ...]


KINDS: tuple[Kind, ...] = (
    Kind("fork", (), (".#.#.#..", ".#.#.#..", ".#####..", "...#....", "...#....", "...#....", "...#....", "...#....")),
    Kind("knife", (), (".......#", "......##", ".....##.", "....##..", "...##...", "..#.....", ".#......", "#.......")),
    Kind("cup", ("mug",), ("........", "#####...", "#####.#.", "#####..#", "#####.#.", "#####...", ".###....", "........")),
    Kind("plate", ("dish",), ("........", "........", ".######.", "#......#", "#......#", ".######.", "........", "........")),
    Kind("car", ("auto",), ("........", "..####..", ".#....#.", "########", "########", ".##..##.", ".##..##.", "........")),
    Kind("truck", (), ("######..", "######..", "######.#", "########", "########", ".##...##", "........", "........")),
    Kind("tree", (), ("...##...", "..####..", ".######.", "########", "...##...", "...##...", "...##...", "..####..")),
    Kind("bird", (), ("........", ".##...##", "...#.#..", "....#...", "...###..", "..#####.", "...###..", "........")),
    Kind("dog", ("puppy",), ("#.......", "##....#.", "########", ".######.", ".#....#.", ".#....#.", "........", "........")),
    Kind("ball", (), ("..####..", ".######.", "########", "########", "########", "########", ".######.", "..####..")),
    Kind("boat", ("ship",), ("...#....", "...##...", "...###..", "...#....", "########", ".######.", "..####..", "........")),
    Kind("clock", (), ("..####..", ".#....#.", "#..#...#", "#..#...#", "#..###.#", "#......#", ".#....#.", "..####..")),
    Kind("book", (), (".######.", "#.#....#", "#.#....#", "#.#....#", "#.#....#", "#.#....#", ".######.", "........")),
    Kind("lamp", (), ("..####..", ".######.", "########", "...##...", "...##...", "...##...", "..####..", ".######.")),
    Kind("hat", ("cap",), ("........", "..####..", "..####..", "..####..", "..####..", "########", "########", "........")),
    Kind("bottle", (), ("...##...", "...##...", "..####..", ".######.", ".######.", ".######.", ".######.", ".######.")),
)

KIND_NAMES: tuple[str, ...] = tuple(kind.name for kind in KINDS)
KIND_BY_NAME: dict[str, Kind] = {kind.name: kind for kind in KINDS}

# The language prior: the second of each pair is the kind that text about the first keeps naming.
# Scenes add the partner often (co-occurrence in images) and captions name it even when it is
# absent (co-occurrence in text): the combination that makes real LVLMs hallucinate.
PAIRS: tuple[tuple[str, str], ...] = (
    ("fork", "knife"),
    ("cup", "plate"),
    ("car", "truck"),
    ("tree", "bird"),
    ("dog", "ball"),
)
PARTNER: dict[str, str] = dict(PAIRS)

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 235),
    "yellow": (235, 215, 40),
    "purple": (160, 60, 205),
    "white": (235, 235, 235),
}

# Scale of the 8x8 bitmap in pixels per bitmap cell.
SIZES: dict[str, int] = {"small": 2, "big": 3}

# The scene is a 2x2 grid; one object at most per cell.
POSITIONS: tuple[str, ...] = ("top left", "top right", "bottom left", "bottom right")

# word -> kind, for every name and synonym.
WORD_TO_KIND: dict[str, str] = {
    word: kind.name for kind in KINDS for word in (kind.name, *kind.synonyms)
}


def _check_vocabulary() -> None:
    """Fail at import if the rules contradict themselves (a typo here would silently skew every score)."""
    words = [word for kind in KINDS for word in (kind.name, *kind.synonyms)]
    if len(words) != len(set(words)):
        raise ValueError(f"toy-world vocabulary: a kind name or synonym is used twice: {sorted(words)}")
    clash = set(words) & (set(COLOURS) | set(SIZES))
    if clash:
        raise ValueError(f"toy-world vocabulary: kind words that are also attribute words: {sorted(clash)}")
    for first, second in PAIRS:
        if first not in KIND_BY_NAME or second not in KIND_BY_NAME:
            raise ValueError(f"toy-world vocabulary: pair ({first}, {second}) names an unknown kind")
    for kind in KINDS:
        if len(kind.bitmap) != 8 or any(len(row) != 8 or set(row) - {"#", "."} for row in kind.bitmap):
            raise ValueError(f"toy-world vocabulary: bitmap of {kind.name!r} is not 8 rows of 8 '#'/'.'")


_check_vocabulary()
