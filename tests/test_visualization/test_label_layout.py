# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""place_labels: every placed box inside the canvas, clear of every other
box and of the reserved areas, checked by a slow pairwise reference on
random crowds; hand-computed positions; leader lines; no room."""
import numpy as np
import pytest

from mmchh.visualization.label_layout import (LabelRequest, boxes_intersect,
                                              place_labels)


def overlap_ref(a, b):
    """Whether two half-open boxes share an area: the overlap lengths along
    x and y, both positive (written the slow, obvious way)."""
    ox = min(float(a[2]), float(b[2])) - max(float(a[0]), float(b[0]))
    oy = min(float(a[3]), float(b[3])) - max(float(a[1]), float(b[1]))
    return ox > 0 and oy > 0


def check_layout(placements, canvas, reserved=()):
    """The layout invariants, pair by pair; returns the placed boxes."""
    width, height = canvas
    boxes = [p.box for p in placements if p.box is not None]
    for box in boxes:
        assert 0 <= box[0] < box[2] <= width, box
        assert 0 <= box[1] < box[3] <= height, box
        for r in reserved:
            assert not overlap_ref(box, r), (box, r)
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not overlap_ref(boxes[i], boxes[j]), (boxes[i], boxes[j])
    return boxes


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_random_crowd_inside_and_apart(seed):
    rng = np.random.default_rng(seed)
    canvas = (600.0, 400.0)
    reserved = [(200.0, 150.0, 400.0, 250.0)]  # e.g. a legend over the canvas
    # 37 labels whose points crowd one corner
    anchors = rng.normal([150, 120], 40, (37, 2)).clip(1, 399)
    sizes = np.c_[rng.uniform(30, 90, 37), rng.uniform(10, 16, 37)]
    requests = [LabelRequest(tuple(a), tuple(s))
                for a, s in zip(anchors, sizes)]
    placements = place_labels(requests, canvas, reserved, points=anchors,
                              gap=3, mark=4)
    boxes = check_layout(placements, canvas, reserved)
    assert len(boxes) == 37  # room for all of them on this canvas
    for req, p in zip(requests, placements):
        w, h = p.box[2] - p.box[0], p.box[3] - p.box[1]
        assert (w, h) == pytest.approx(req.size)
        if p.leader is not None:
            # from the point to the nearest point of the box
            (x, y), (nx, ny) = p.leader
            assert (x, y) == pytest.approx(req.anchor)
            assert p.box[0] <= nx <= p.box[2] and p.box[1] <= ny <= p.box[3]
            assert nx in (p.box[0], p.box[2]) or ny in (p.box[1], p.box[3])


def test_boxes_intersect_matches_reference():
    rng = np.random.default_rng(5)
    for _ in range(2000):
        # small integer boxes of positive size: touching is common
        a, b = (np.r_[xy, xy + wh] for xy, wh in zip(
            rng.integers(0, 8, (2, 2)), rng.integers(1, 5, (2, 2))))
        assert boxes_intersect(a, b) == overlap_ref(a, b), (a, b)


def test_hand_computed_positions():
    # alone in the middle: upper right, `gap` off both axes
    p, = place_labels([LabelRequest((100, 100), (40, 10))], (200, 200),
                      gap=6)
    assert p.box == (106, 84, 146, 94) and p.leader is None
    # at the right edge: upper left
    p, = place_labels([LabelRequest((190, 100), (40, 10))], (200, 200),
                      gap=6)
    assert p.box == (144, 84, 184, 94) and p.leader is None
    # in the top right corner: lower left
    p, = place_labels([LabelRequest((190, 5), (40, 10))], (200, 200), gap=6)
    assert p.box == (144, 11, 184, 21)
    # the second label of the same point takes the next free position
    a, b = place_labels([LabelRequest((100, 100), (40, 10))] * 2, (200, 200),
                        gap=6)
    assert a.box == (106, 84, 146, 94) and b.box == (106, 106, 146, 116)


def test_reserved_area_moves_label_with_a_leader():
    # the whole neighbourhood of the point is reserved: the label goes
    # beyond it, with a leader line from the point
    reserved = [(40.0, 40.0, 160.0, 160.0)]
    p, = place_labels([LabelRequest((100, 100), (30, 10))], (200, 200),
                      reserved, gap=4)
    check_layout([p], (200, 200), reserved)
    assert p.leader is not None and p.leader[0] == (100.0, 100.0)


def test_a_label_avoids_another_landmarks_mark():
    # a second point where the first choice would go: the label moves on
    p, = place_labels([LabelRequest((100, 100), (40, 10))], (200, 200),
                      points=[(100, 100), (120, 90)], gap=6, mark=3)
    assert not overlap_ref(p.box, (117, 87, 123, 93))


def test_no_room_leaves_the_label_out():
    a, b = place_labels([LabelRequest((10, 10), (15, 8)),
                         LabelRequest((10, 10), (15, 8))], (20, 10), gap=0)
    assert a.box is not None and b.box is None and b.leader is None
    check_layout([a], (20, 10))
