# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The coordinate frames of one sample, and the maps between them.

A prediction lives in four frames:

* **heatmap**: pixels of the ``(W, H)`` map; an integer is a pixel centre
  (the codec's grid, :mod:`~mmchh.codecs.utils.heatmap_grid`);
* **input**: pixels of the ``(w, h)`` model input;
* **image**: pixels of the image the input was cut from: the box of size
  ``input_scale`` centred at ``input_center`` (MMPose's top-down affine,
  without rotation, as at test time);
* **mm**: image pixels times the pixel ``spacing``.

:class:`HeatmapFrame` holds what one sample needs to go between them, so
every caller (codec, head, API, overlay) uses the same formulas.
"""
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from mmchh.utils.errors import InputError
from mmchh.utils.spacing import Spacing
from .heatmap_grid import grid_scale, heatmap_to_input, input_to_heatmap

__all__ = ['HeatmapFrame']

Points = Union[np.ndarray, Tensor, Sequence]


def _pair(value: Any, name: str, positive: bool) -> Tuple[float, float]:
    """``value`` as 2 finite floats (one number is used for both): a
    box's centre or size (a spacing is a :class:`Spacing`)."""
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, 2)
    if arr.size != 2 or not np.isfinite(arr).all() or (positive and not (
            arr > 0).all()):
        kind = 'positive ' if positive else ''
        raise InputError(f'HeatmapFrame: {name} must be one {kind}number or '
                         f'(x, y) of finite {kind}numbers; got {value!r}')
    return float(arr[0]), float(arr[1])


def _size(value: Any, name: str) -> Tuple[int, int]:
    """``value`` as a (w, h) pair of positive integers."""
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size != 2 or not np.isfinite(arr).all() or (arr <= 0).any() or (
            arr != np.round(arr)).any():
        raise InputError(f'HeatmapFrame: {name} must be (w, h), two '
                         f'positive integers; got {value!r}')
    return int(arr[0]), int(arr[1])


def _constant(values, points: Points):
    """``values`` in the type of ``points``: a tensor of its dtype and
    device, else a float64 array."""
    if isinstance(points, Tensor):
        return torch.as_tensor(
            np.asarray(values, dtype=np.float64), dtype=points.dtype,
            device=points.device)
    return np.asarray(values, dtype=np.float64)


def _points(points: Points):
    """Tensors stay tensors (integer ones become float32); anything else
    becomes a float64 array."""
    if isinstance(points, Tensor):
        return points if points.is_floating_point() else points.float()
    return np.asarray(points, dtype=np.float64)


@dataclass(frozen=True)
class HeatmapFrame:
    """Heatmap <-> model input <-> image <-> mm for one sample.

    Args:
        heatmap_size (tuple[int, int]): Heatmap size ``(W, H)``.
        input_size (tuple[int, int]): Model input size ``(w, h)``.
        input_center (tuple[float, float], optional): Centre ``(x, y)`` of
            the box the input covers, in image pixels.
        input_scale (tuple[float, float], optional): Size ``(w, h)`` of
            that box, in image pixels.
        spacing (tuple[float, float], optional): mm per image pixel
            ``(x, y)``; one number is used for both.

    Raises:
        InputError: If a field is malformed (the field is named), or when a
            conversion needs a field the frame does not have.

    Note:
        Points are arrays of shape (..., 2) holding ``(x, y)``. numpy input
        (or any sequence) is computed in float64 and returned as a float64
        array; a Tensor is computed in its own dtype (integer tensors in
        float32) on its own device. The formulas:

        - heatmap -> input: ``(uv + 0.5) * heatmap_scale - 0.5`` (the
          codec's grid, :func:`heatmap_to_input`);
        - input -> image: ``xy / input_size * input_scale + input_center -
          0.5 * input_scale``, exactly what MMPose's
          ``TopdownPoseEstimator.add_pred_to_datasample`` applies to
          keypoints;
        - image -> mm: ``xy * spacing``.
    """
    heatmap_size: Tuple[int, int]
    input_size: Tuple[int, int]
    input_center: Optional[Tuple[float, float]] = None
    input_scale: Optional[Tuple[float, float]] = None
    spacing: Optional[Tuple[float, float]] = None

    def __post_init__(self) -> None:
        # frozen: the normalised values are set through object.__setattr__
        fix = object.__setattr__
        fix(self, 'heatmap_size', _size(self.heatmap_size, 'heatmap_size'))
        fix(self, 'input_size', _size(self.input_size, 'input_size'))
        for name, positive in (('input_center', False),
                               ('input_scale', True)):
            value = getattr(self, name)
            if value is not None:
                fix(self, name, _pair(value, name, positive))
        if self.spacing is not None:
            # kept as the plain (x, y) tuple callers read and pass on
            fix(self, 'spacing', Spacing.parse(
                self.spacing, 'HeatmapFrame: spacing').xy)

    @classmethod
    def from_codec(cls,
                   codec,
                   metainfo: Optional[Mapping[str, Any]] = None
                   ) -> 'HeatmapFrame':
        """The frame of a codec's grid, with a sample's box and spacing.

        Args:
            codec: A keypoint codec with ``heatmap_size`` and
                ``input_size`` (e.g. ``SoftmaxHeatmap``, ``head.decoder``).
            metainfo (Mapping, optional): A ``PoseDataSample.metainfo``
                dict; its ``input_center``, ``input_scale``, ``input_size``
                and ``spacing`` are used when present.

        Returns:
            HeatmapFrame: The frame; fields missing from ``metainfo`` are
            None.

        Raises:
            InputError: If the codec has no heatmap or input size, or the
                metainfo's ``input_size`` is not the codec's (the heatmap
                grid would not cover the input the sample was cut to).
        """
        if not (hasattr(codec, 'heatmap_size')
                and hasattr(codec, 'input_size')):
            raise InputError(
                f'HeatmapFrame.from_codec: {type(codec).__name__} has no '
                'heatmap_size and input_size (not a heatmap codec)')
        meta = metainfo or {}
        frame = cls(
            heatmap_size=codec.heatmap_size,
            input_size=meta.get('input_size', codec.input_size),
            input_center=meta.get('input_center'),
            input_scale=meta.get('input_scale'),
            spacing=meta.get('spacing'))
        if frame.input_size != _size(codec.input_size, 'codec input_size'):
            raise InputError(
                f"HeatmapFrame.from_codec: metainfo['input_size'] "
                f'{frame.input_size} is not the input size of the codec '
                f'({tuple(codec.input_size)}); the pipeline\'s TopdownAffine '
                'and the codec must use the same input_size')
        return frame

    def _require(self, use: str, *names: str) -> None:
        missing = [n for n in names if getattr(self, n) is None]
        if missing:
            raise InputError(
                f'HeatmapFrame: {use} needs {" and ".join(missing)} (from '
                'the sample\'s metainfo, set by TopdownAffine / the '
                'dataset); this frame has none')

    @property
    def heatmap_scale(self) -> np.ndarray:
        """(2,) float64: model-input pixels per heatmap pixel ``(sx, sy)``
        (the codec's :func:`grid_scale`)."""
        return grid_scale(self.input_size, self.heatmap_size).astype(
            np.float64)

    def heatmap_to_input(self, uv: Points):
        """Heatmap pixels (..., 2) -> model-input pixels (..., 2)."""
        uv = _points(uv)
        return heatmap_to_input(uv, _constant(self.heatmap_scale, uv))

    def input_to_heatmap(self, xy: Points):
        """Model-input pixels (..., 2) -> continuous heatmap pixels."""
        xy = _points(xy)
        return input_to_heatmap(xy, _constant(self.heatmap_scale, xy))

    def input_to_image(self, xy: Points):
        """Model-input pixels (..., 2) -> image pixels (..., 2)."""
        self._require('input_to_image', 'input_center', 'input_scale')
        xy = _points(xy)
        scale = _constant(self.input_scale, xy)
        return (xy / _constant(self.input_size, xy) * scale +
                _constant(self.input_center, xy) - 0.5 * scale)

    def image_to_input(self, xy: Points):
        """Image pixels (..., 2) -> model-input pixels (..., 2); the
        inverse of :meth:`input_to_image`."""
        self._require('image_to_input', 'input_center', 'input_scale')
        xy = _points(xy)
        scale = _constant(self.input_scale, xy)
        return ((xy - _constant(self.input_center, xy) + 0.5 * scale) /
                scale * _constant(self.input_size, xy))

    def heatmap_to_image(self, uv: Points):
        """Heatmap pixels (..., 2) -> image pixels (..., 2)."""
        return self.input_to_image(self.heatmap_to_input(uv))

    def image_to_heatmap(self, xy: Points):
        """Image pixels (..., 2) -> continuous heatmap pixels (..., 2); the
        inverse of :meth:`heatmap_to_image`."""
        return self.input_to_heatmap(self.image_to_input(xy))

    def image_to_mm(self, xy: Points):
        """Image pixels (..., 2) -> mm (..., 2): ``xy * spacing``."""
        self._require('image_to_mm', 'spacing')
        xy = _points(xy)
        return xy * _constant(self.spacing, xy)

    def input_pixel_size(self) -> np.ndarray:
        """(2,) float64: image pixels per model-input pixel (x, y),
        ``input_scale / input_size``."""
        self._require('input_pixel_size', 'input_scale')
        return (np.asarray(self.input_scale, dtype=np.float64) /
                np.asarray(self.input_size, dtype=np.float64))

    def heatmap_pixel_image(self) -> np.ndarray:
        """(2,) float64 original-image pixels per heatmap pixel (x, y):
        ``heatmap_scale * input_scale / input_size``."""
        return self.heatmap_scale * self.input_pixel_size()

    def heatmap_pixel_mm(self) -> Optional[np.ndarray]:
        """(2,) float64 mm per heatmap pixel (x, y), or None without
        ``spacing``.

        heatmap pixel -> input pixels (``heatmap_scale``) -> image pixels
        (``input_scale / input_size``) -> mm (``spacing``).
        """
        if self.spacing is None:
            return None
        self._require('heatmap_pixel_mm', 'input_scale')
        # multiplied and divided left to right, in the order the head has
        # always used, so its numbers do not move by an ulp
        return (self.heatmap_scale *
                np.asarray(self.input_scale, dtype=np.float64) /
                np.asarray(self.input_size, dtype=np.float64) *
                np.asarray(self.spacing, dtype=np.float64))
