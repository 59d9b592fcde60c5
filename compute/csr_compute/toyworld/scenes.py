"""Scenes: which objects a toy image shows (with their attributes), and the image itself.

A scene is a 64x64 RGB image cut into a 2x2 grid of 32-pixel cells, one object at most per cell.
Each object is a kind's 8x8 silhouette, scaled 2x ("small") or 3x ("big"), filled with one of the
world's colours (jittered a little), placed near its cell's centre, on a noisy dark background.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .vocab import COLOURS, KIND_BY_NAME, KIND_NAMES, PARTNER, POSITIONS, SIZES

IMAGE_SIZE = 64
CELL = IMAGE_SIZE // 2
MAX_OBJECTS = len(POSITIONS)
BACKGROUND = 28
BACKGROUND_NOISE = 10
COLOUR_JITTER = 20
PLACEMENT_JITTER = 3


def sample_objects(rng: np.random.Generator, partner_prob: float) -> list[dict[str, Any]]:
    """One scene's objects in the world's natural distribution.

    1 to 3 distinct kinds are drawn uniformly; then each pair's first kind brings its partner
    with probability ``partner_prob`` while a cell is free. Positions are distinct random cells.
    """
    count = int(rng.integers(1, 4))
    names = [KIND_NAMES[i] for i in rng.choice(len(KIND_NAMES), size=count, replace=False)]
    for name in list(names):
        partner = PARTNER.get(name)
        if partner and partner not in names and len(names) < MAX_OBJECTS and rng.random() < partner_prob:
            names.append(partner)
    cells = rng.choice(MAX_OBJECTS, size=len(names), replace=False)
    colours, sizes = list(COLOURS), list(SIZES)
    return [
        {
            "name": name,
            "color": colours[int(rng.integers(len(colours)))],
            "size": sizes[int(rng.integers(len(sizes)))],
            "position": POSITIONS[int(cell)],
        }
        for name, cell in zip(names, cells)
    ]


def lone_kinds(objects: list[dict[str, Any]]) -> list[str]:
    """Pair-first kinds shown without their partner: where the language prior invites a hallucination."""
    names = {obj["name"] for obj in objects}
    return [obj["name"] for obj in objects if obj["name"] in PARTNER and PARTNER[obj["name"]] not in names]


def sample_lone_objects(rng: np.random.Generator, partner_prob: float) -> list[dict[str, Any]]:
    """A natural scene conditioned on being lone (rejection sampling keeps every other statistic natural)."""
    while True:
        objects = sample_objects(rng, partner_prob)
        if lone_kinds(objects):
            return objects


def render(objects: list[dict[str, Any]], rng: np.random.Generator) -> tuple[np.ndarray, list[list[int]]]:
    """The scene's pixels (64x64x3 uint8) and each object's bounding box ``[x0, y0, x1, y1]`` (x1, y1 exclusive)."""
    image = rng.integers(BACKGROUND - BACKGROUND_NOISE, BACKGROUND + BACKGROUND_NOISE + 1,
                         size=(IMAGE_SIZE, IMAGE_SIZE, 3))
    boxes = []
    for obj in objects:
        mask = _mask(obj["name"], SIZES[obj["size"]])
        extent = mask.shape[0]
        row, col = divmod(POSITIONS.index(obj["position"]), 2)
        margin = (CELL - extent) // 2
        y0 = row * CELL + margin + int(rng.integers(-PLACEMENT_JITTER, PLACEMENT_JITTER + 1))
        x0 = col * CELL + margin + int(rng.integers(-PLACEMENT_JITTER, PLACEMENT_JITTER + 1))
        colour = np.array(COLOURS[obj["color"]]) + rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, size=3)
        region = image[y0:y0 + extent, x0:x0 + extent]
        region[mask] = np.clip(colour, 0, 255)
        boxes.append([x0, y0, x0 + extent, y0 + extent])
    return image.astype(np.uint8), boxes


def _mask(name: str, scale: int) -> np.ndarray:
    bitmap = np.array([[cell == "#" for cell in row] for row in KIND_BY_NAME[name].bitmap])
    return np.kron(bitmap, np.ones((scale, scale), dtype=bool))
