# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""One synthetic sample: anatomy, pose, two annotators' clicks, pixels."""
import numbers

import numpy as np

from mmchh.datasets.ceph_meta import (ISBI_ANNOTATOR_FOLDERS,
                                      NUM_CEPH_LANDMARKS)
from .anatomy import ceph_labels, place_landmarks
from .drawing import draw_head
from .geometry import perp
from .render import pose_matrix, render_image

__all__ = [
    'ANNOTATOR_SIGMA_NORMAL_PX', 'ANNOTATOR_TANGENT_RATIO', 'MIN_IMAGE_SIZE',
    'check_image_size', 'is_int', 'synthetic_ceph_sample'
]

#: Annotator noise across the contour, in pixels of a full-size (1935 px
#: wide) image. With :data:`ANNOTATOR_TANGENT_RATIO` = 3 two independent
#: annotators then disagree by about 20 px = 2 mm on average, which is the
#: inter-observer difference reported for the real ISBI 2015 annotations.
ANNOTATOR_SIGMA_NORMAL_PX = 5.3

#: Along-contour noise over across-contour noise: clinicians agree on where
#: an edge is much better than on where along the edge a point lies.
ANNOTATOR_TANGENT_RATIO = 3.0

#: Smallest accepted ``image_size`` (W, H); below this the anatomy would be
#: a few pixels across and the landmarks would collapse onto each other.
MIN_IMAGE_SIZE = (64, 80)


def is_int(value):
    """True for an integer that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_image_size(image_size):
    """Validates an output ``(W, H)``.

    Returns:
        tuple[int, int]: ``(W, H)`` as ints.

    Raises:
        ValueError: not a pair of integers, or below :data:`MIN_IMAGE_SIZE`.
    """
    try:
        w, h = image_size
    except (TypeError, ValueError):
        raise ValueError('image_size must be a (width, height) pair, got '
                         f'{image_size!r}') from None
    if not (is_int(w) and is_int(h)):
        raise ValueError('image_size must hold two integers, got '
                         f'{image_size!r}')
    if w < MIN_IMAGE_SIZE[0] or h < MIN_IMAGE_SIZE[1]:
        raise ValueError(
            f'image_size (W, H) must be at least {MIN_IMAGE_SIZE}, got '
            f'{tuple(image_size)}')
    return int(w), int(h)


def synthetic_ceph_sample(rng, image_size=(320, 400)):
    """Generates one synthetic lateral ceph with its annotations.

    Draws, in this order, the anatomy, the pose, the two annotators' clicks
    and the pixel noise from ``rng``, so everything but the pixels is
    independent of ``image_size``.

    Args:
        rng (np.random.Generator): source of randomness.
        image_size (tuple[int, int]): output (W, H) in pixels.

    Returns:
        dict: with keys

        - ``image`` (np.ndarray): (H, W) uint8 grey image.
        - ``landmarks`` (np.ndarray): (19, 2) float true positions (x, y) in
          output pixels, in ``CEPH_LANDMARK_NAMES`` order.
        - ``tangents`` (np.ndarray): (19, 2) unit vectors along the local
          contour at each landmark, in output pixel axes.
        - ``annotations`` (dict): ``'senior'`` and ``'junior'`` (19, 2)
          int64 clicked positions, inside the image.
        - ``labels`` (tuple[int]): the 8 classification labels in
          ``CEPH_LABEL_NAMES`` order.
    """
    w, h = check_image_size(image_size)
    head, lm_full, tan_full = place_landmarks(rng)
    ops = draw_head(head, rng)
    labels = ceph_labels(lm_full)
    # a pose that keeps every landmark well inside (nearly always the first)
    for _ in range(20):
        lin, off = pose_matrix(rng, (w, h))
        lm = lm_full @ lin.T + off
        if (lm.min(0) > (0.03 * w, 0.03 * h)).all() and (lm.max(0)
                                                         < (0.97 * w,
                                                            0.97 * h)).all():
            break
    tangents = tan_full @ lin.T
    tangents /= np.linalg.norm(tangents, axis=1, keepdims=True)

    # annotators click in the full-size frame: noise along/across the
    # contour, then the same pose and resize as the anatomy
    normal_full = np.stack([perp(t) for t in tan_full])
    annotations = {}
    for _, who in ISBI_ANNOTATOR_FOLDERS:
        z = rng.standard_normal((NUM_CEPH_LANDMARKS, 2))
        noisy = (lm_full + tan_full * z[:, :1] *
                 (ANNOTATOR_SIGMA_NORMAL_PX * ANNOTATOR_TANGENT_RATIO) +
                 normal_full * z[:, 1:] * ANNOTATOR_SIGMA_NORMAL_PX)
        pts = np.rint(noisy @ lin.T + off).astype(np.int64)
        pts[:, 0] = np.clip(pts[:, 0], 0, w - 1)
        pts[:, 1] = np.clip(pts[:, 1], 0, h - 1)
        annotations[who] = pts

    image = render_image(ops, lin, off, rng, (w, h))
    return dict(image=image,
                landmarks=lm,
                tangents=tangents,
                annotations=annotations,
                labels=labels)


# --------------------------------------------------------------------------
