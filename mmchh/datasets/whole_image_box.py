# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The box of a whole image: the one affine of testing and inference.

A landmark image has no detector: its box is the whole image, and MMPose's
``GetBBoxCenterScale`` + ``TopdownAffine`` turn the box into the affine
that maps the image onto the network input. The dataset (training,
validation, calibration, ``tools/test.py``) and inference
(``predict_landmarks``, ``tools/infer.py``) take the box from here, so they
measure the geometry that is deployed.

Which box: ``[0, 0, w, h]`` (x1, y1, x2, y2), i.e. centre ``(w / 2, h / 2)``
and scale ``(w, h)``. MMPose's ``get_warp_matrix`` sends the box centre to
``(W / 2, H / 2)`` of the ``W x H`` input and the box width to ``W``, so with
this box a pixel ``x`` of the image goes to ``x * W / w`` of the input
(``TopdownPoseEstimator`` maps predictions back by the inverse,
``x_in * w / W``): pixel ``(0, 0)`` stays ``(0, 0)``, an image of the
input's size is copied by the identity (no resampling), and a resize is a
pure scaling of pixel coordinates, whatever the size. MMPose's own
``inference_topdown`` uses this box when it is given none.

``BaseCocoStyleDataset.parse_data_info`` instead clips the COCO box to
``[0, 0, w - 1, h - 1]`` (centre ``((w - 1) / 2, (h - 1) / 2)``, scale
``(w - 1, h - 1)``, widened by ``TopdownAffine`` to the input's aspect):
for a 128 x 160 image and input it resamples the image by 159/160 and
shifts it by half a pixel, a slightly different geometry from the one
inference used. The box ``[-0.5, -0.5, w - 0.5, h - 0.5]`` (the image's
extent when pixel centres are at integers) is not chosen either:
``get_warp_matrix`` puts its centre on ``W / 2``, which is half a pixel off
the input's own pixel-centre middle ``(W - 1) / 2``, so even at equal sizes
it would shift the image by half a pixel.
"""
import numpy as np

__all__ = ['whole_image_bbox']


def whole_image_bbox(width: int, height: int) -> np.ndarray:
    """The box of a whole ``width`` x ``height`` image (see the module).

    Args:
        width (int): Image width in pixels (> 0).
        height (int): Image height in pixels (> 0).

    Returns:
        np.ndarray: (1, 4) float32 ``[[0, 0, width, height]]`` (x1, y1, x2,
        y2), the ``bbox`` MMPose's pipelines take.

    Raises:
        ValueError: If a size is not a positive number.
    """
    if not (width > 0 and height > 0):
        raise ValueError(f'an image size must be positive; got {width} x '
                         f'{height}')
    return np.array([[0, 0, width, height]], dtype=np.float32)
