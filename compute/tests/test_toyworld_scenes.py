"""The toy world's generator: annotations agree with the pixels, the prior is built in, draws are seeded."""

from collections import Counter

import numpy as np
import pytest

from csr_compute.toyworld.scenes import CELL, lone_kinds, render, sample_lone_objects, sample_objects
from csr_compute.toyworld.vocab import COLOURS, KIND_BY_NAME, KIND_NAMES, PARTNER, POSITIONS, SIZES


def _scenes(seed, count, partner_prob=0.85):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        objects = sample_objects(rng, partner_prob)
        image, boxes = render(objects, rng)
        out.append((objects, image, boxes))
    return out


def test_same_seed_same_scenes_and_pixels():
    first, second = _scenes(7, 20), _scenes(7, 20)
    for (objects_a, image_a, boxes_a), (objects_b, image_b, boxes_b) in zip(first, second):
        assert objects_a == objects_b and boxes_a == boxes_b
        assert np.array_equal(image_a, image_b)
    assert any(a[0] != b[0] for a, b in zip(first, _scenes(8, 20)))


def test_annotations_are_well_formed():
    for objects, image, boxes in _scenes(0, 300):
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
        assert 1 <= len(objects) <= 4
        names = [obj["name"] for obj in objects]
        assert len(set(names)) == len(names), f"a kind drawn twice: {names}"
        assert len({obj["position"] for obj in objects}) == len(objects), "two objects share a cell"
        for obj in objects:
            assert obj["name"] in KIND_NAMES and obj["color"] in COLOURS and obj["size"] in SIZES
            assert obj["position"] in POSITIONS


def test_each_box_shows_its_kinds_silhouette_in_its_colour_inside_its_cell():
    for objects, image, boxes in _scenes(1, 200):
        for obj, (x0, y0, x1, y1) in zip(objects, boxes):
            scale = SIZES[obj["size"]]
            assert x1 - x0 == y1 - y0 == 8 * scale
            row, col = divmod(POSITIONS.index(obj["position"]), 2)
            assert col * CELL <= x0 and x1 <= (col + 1) * CELL, f"{obj} box {x0, x1} leaves its cell"
            assert row * CELL <= y0 and y1 <= (row + 1) * CELL, f"{obj} box {y0, y1} leaves its cell"
            region = image[y0:y1, x0:x1].astype(int)
            expected = np.kron(np.array([[c == "#" for c in r] for r in KIND_BY_NAME[obj["name"]].bitmap]),
                               np.ones((scale, scale), dtype=bool))
            # Every colour has a channel far above the dark background, so "bright" == object pixel.
            assert np.array_equal(region.max(axis=2) > 100, expected), f"silhouette of {obj['name']} not drawn"
            colour = region[expected].mean(axis=0)
            assert np.abs(colour - np.array(COLOURS[obj["color"]])).max() <= 20.5, f"{obj['color']} drawn as {colour}"


def test_background_is_dark_outside_every_box():
    for objects, image, boxes in _scenes(2, 50):
        mask = np.ones((64, 64), dtype=bool)
        for x0, y0, x1, y1 in boxes:
            mask[y0:y1, x0:x1] = False
        assert image[mask].max() <= 38


def test_partners_follow_their_first_kind_at_the_configured_rate():
    scenes = _scenes(3, 4000)
    with_first = with_partner = 0
    for objects, _, _ in scenes:
        names = {obj["name"] for obj in objects}
        for first, partner in PARTNER.items():
            if first in names:
                with_first += 1
                with_partner += partner in names
    # 0.85 by the rule; less where a full grid leaves no cell for the partner (measured 0.78).
    assert 0.74 <= with_partner / with_first <= 0.85


@pytest.mark.parametrize("partner_prob", [0.0, 1.0])
def test_partner_probability_extremes(partner_prob):
    rng = np.random.default_rng(4)
    for _ in range(500):
        objects = sample_objects(rng, partner_prob)
        if partner_prob == 1.0 and lone_kinds(objects):
            assert len(objects) == 4, "a lone first kind despite a free cell"
        if partner_prob == 0.0:
            assert len(objects) <= 3


def test_lone_sampling_gives_lone_scenes_with_natural_kinds():
    rng = np.random.default_rng(5)
    scenes = [sample_lone_objects(rng, 0.85) for _ in range(300)]
    assert all(lone_kinds(objects) for objects in scenes)
    firsts = Counter(kind for objects in scenes for kind in lone_kinds(objects))
    assert set(firsts) == set(PARTNER), f"every pair should appear lone, got {dict(firsts)}"
