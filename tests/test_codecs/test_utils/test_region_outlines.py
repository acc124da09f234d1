"""Region outlines against a slow float64 reference written the obvious way
(a crossing-number test per pixel centre, a loop shoelace), on random masks
with holes and corner-touching pixels, and hand cases."""
import numpy as np
import pytest

from mmchh.codecs.utils import HeatmapFrame, region_outlines, ring_area


def slow_area(ring):
    """Signed shoelace area, one term at a time in float64."""
    total = 0.0
    n = len(ring)
    for i in range(n):
        x0, y0 = float(ring[i][0]), float(ring[i][1])
        x1, y1 = float(ring[(i + 1) % n][0]), float(ring[(i + 1) % n][1])
        total += x0 * y1 - x1 * y0
    return total / 2


def slow_inside(rings, px, py):
    """Even-odd crossing number of a ray to +x over every ring's edges."""
    crossings = 0
    for ring in rings:
        n = len(ring)
        for i in range(n):
            (x0, y0), (x1, y1) = ring[i], ring[(i + 1) % n]
            if (y0 > py) != (y1 > py):
                x = x0 + (py - y0) * (x1 - x0) / (y1 - y0)
                if x > px:
                    crossings += 1
    return crossings % 2 == 1


def random_mask(seed, shape, p):
    rng = np.random.default_rng(seed)
    return rng.random(shape) < p


@pytest.mark.parametrize('seed', range(6))
def test_random_masks_area_and_every_pixel_centre(seed):
    shape = ((5, 7), (8, 6), (9, 9))[seed % 3]
    mask = random_mask(seed, shape, (0.3, 0.5, 0.7)[seed % 3])
    rings = region_outlines(mask)
    # the signed areas add up to the pixel count exactly
    assert sum(slow_area(r) for r in rings) == mask.sum()
    assert sum(ring_area(r) for r in rings) == pytest.approx(
        mask.sum(), abs=1e-9)
    h, w = shape
    for y in range(h):
        for x in range(w):
            assert slow_inside(rings, x, y) == mask[y, x], (x, y)
    for r in rings:
        # vertices on pixel corners, inside the map's extent
        assert np.all(r == np.round(r - 0.5) + 0.5)
        assert r[:, 0].min() >= -0.5 and r[:, 0].max() <= w - 0.5
        assert r[:, 1].min() >= -0.5 and r[:, 1].max() <= h - 0.5
        # only turning vertices: consecutive edges are never collinear
        step = np.roll(r, -1, axis=0) - r
        assert np.all(np.abs(step).min(axis=1) == 0)  # axis-parallel
        turn = step[:, 0] * np.roll(step, -1, axis=0)[:, 1] - \
            step[:, 1] * np.roll(step, -1, axis=0)[:, 0]
        assert np.all(turn != 0)


def test_single_pixel_is_its_unit_square():
    mask = np.zeros((4, 5), bool)
    mask[2, 3] = True
    (ring, ) = region_outlines(mask)
    assert ring_area(ring) == 1.0
    assert sorted(map(tuple, ring)) == [(2.5, 1.5), (2.5, 2.5), (3.5, 1.5),
                                        (3.5, 2.5)]


def test_l_shape_hand_case():
    # pixels (x, y): (0, 0), (0, 1), (1, 1): an L of 3 squares
    mask = np.array([[1, 0], [1, 1]], bool)
    (ring, ) = region_outlines(mask)
    assert ring_area(ring) == 3.0
    assert len(ring) == 6
    assert set(map(tuple, ring)) == {(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5),
                                     (1.5, 0.5), (1.5, 1.5), (-0.5, 1.5)}


def test_hole_and_corner_touching_pixels():
    # a 3x3 square with its centre missing: an outer ring and a hole
    mask = np.ones((3, 3), bool)
    mask[1, 1] = False
    rings = region_outlines(mask)
    areas = sorted(ring_area(r) for r in rings)
    assert areas == [-1.0, 9.0]
    # two pixels touching at one corner: two rings (4-connectivity)
    diag = np.array([[1, 0], [0, 1]], bool)
    rings = region_outlines(diag)
    assert sorted(ring_area(r) for r in rings) == [1.0, 1.0]


def test_empty_full_and_bad_masks():
    assert region_outlines(np.zeros((3, 4), bool)) == []
    (ring, ) = region_outlines(np.ones((3, 4), bool))
    assert ring_area(ring) == 12.0 and len(ring) == 4
    with pytest.raises(ValueError, match='shape'):
        region_outlines(np.ones(5, bool))


def test_area_scales_through_the_frame():
    """Heatmap -> image keeps the orientation and scales every area by the
    image px^2 of one heatmap pixel."""
    mask = random_mask(7, (6, 8), 0.5)
    frame = HeatmapFrame((8, 6), (32, 24), (50.0, 40.0), (64.0, 48.0))
    per_pixel = float(np.prod(frame.heatmap_scale * frame.input_pixel_size()))
    rings = [frame.heatmap_to_image(r) for r in region_outlines(mask)]
    assert sum(slow_area(r) for r in rings) == pytest.approx(
        mask.sum() * per_pixel, rel=1e-12)
