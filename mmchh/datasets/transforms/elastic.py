# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Elastic deformation whose keypoints move exactly with the pixels.

Semantics (imgaug ``ElasticTransformation``, as in the paper): two
displacement fields ``dx, dy`` of i.i.d. ``U(-1, 1)`` values per pixel,
Gaussian-smoothed with ``sigma`` and multiplied by ``alpha`` (the paper:
``alpha ~ U(0, 500)``, ``sigma = 30`` at 640x800). The image is warped
backwards, ``out(p) = in(p + d(p))``, so a keypoint ``k`` moves to the point
``p`` that solves ``p + d(p) = k``.

Why our own and not albumentations' ``ElasticTransform`` (2.0.8, the version
pip resolves under ``numpy<2`` / ``opencv-python<4.12``):

* installing it adds ``opencv-python-headless`` next to our
  ``opencv-python`` (two distributions writing the same ``cv2`` package),
  plus pydantic 2, albucore, simsimd and stringzilla;
* its keypoint mapping is not exact: the default ``"mask"`` method paints
  each keypoint as a radius-1 disk at its rounded position, remaps the mask
  with nearest neighbour and takes the first pixel found (integer output,
  ~1-3 px error, keypoints that vanish are dropped, which breaks MMPose's
  fixed (N, K) layout); ``"direct"`` truncates to integers and builds a
  nearest-splat inverse map in a per-pixel Python loop (~30 s at 640x800);
* ``alpha`` is a single value, not a per-image range;
* MMPose's ``Albumentation`` wrapper only passes the image anyway.

Implementation notes:

* **Keypoints.** ``p + d(p) = k`` is solved by the fixed-point iteration
  ``p <- k - d(p)``, starting at ``p = k``, with ``d`` bilinearly
  interpolated between pixel centres (``cv2.remap`` only samples it at the
  integer output pixels; the field is smooth there). The map
  ``p -> k - d(p)`` is a contraction when the field's Lipschitz constant
  ``L = max |grad d|`` is < 1 (which is also the condition for the warp not
  to fold), and the error shrinks by about the local gradient per step.
  For the paper's strongest field (``sigma = 30``, ``alpha = 500``) we
  measured ``max |grad d|`` of 0.3-0.35 over the whole image, ~0.1 locally
  at typical points: the residual falls ~10x per step and 4-5 steps reach
  the 1e-3 px tolerance; ``max_iter`` bounds the loop. (The one-step
  shortcut ``k - d(k)`` is off by up to ~0.5 px on strong fields.) A field
  strong enough to fold the image has no unique inverse and the keypoint is
  then only approximate.
* **Keypoint visibility is kept.** Keypoints pushed outside the image keep
  their visibility and their (outside) coordinates: dropping or clipping
  them would silently corrupt the labels, and MMPose's codecs (and our
  ``SoftmaxHeatmap``) already give zero weight to keypoints outside the
  heatmap.
* **Border.** ``border_mode='constant'`` with 0 by default, the same fill
  ``TopdownAffine`` uses (and imgaug's default), so the border the affine
  step created is not reflected back into the image; ``'reflect'`` (OpenCV
  ``BORDER_REFLECT_101``) is available.
* **Speed.** A full-resolution blur with ``sigma = 30`` needs a ~241-tap
  kernel per field: ~90-110 ms per 640x800 image for the whole transform,
  single-threaded (``noise_step=1``), against ~12 ms this way. Since the
  field is smooth on the scale of ``sigma``, we draw the noise on a grid
  ``noise_step`` pixels apart (default ``max(1, sigma // 4)``: at least 4
  nodes per sigma), blur it there with ``sigma / step`` and upsample
  bilinearly. The coarse noise is divided by ``step`` (the square root of
  the number of fine pixels per node), so the field has the same variance
  and correlation length as imgaug's; only its realisation differs, which
  does not matter for random augmentation. ``noise_step=1`` gives the exact
  full-resolution construction. Random numbers come from a generator seeded
  from the global ``np.random`` state, so ``np.random.seed`` reproduces
  results, while drawing float32 values directly.
* **Resolution.** ``alpha`` and ``sigma`` are in pixels of a reference
  input. With ``reference_size=(640, 800)`` and an input ``s`` times as
  large (``s = sqrt(w * h / (640 * 800))``, i.e. ``w / 640`` at the same
  aspect ratio), ``sigma`` is scaled by ``s`` and ``alpha`` by ``s ** 2``:
  the smoothed noise has a standard deviation proportional to
  ``1 / sigma``, so displacements in pixels scale by ``alpha / sigma``,
  and ``s ** 2 / s = s`` keeps them the same fraction of the image.
  (Scaling ``alpha`` by ``s`` alone would leave displacements unchanged in
  pixels, i.e. relatively 4x stronger at 160x200.)
"""
import math
from numbers import Number
from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmpose.registry import TRANSFORMS

_INTERPOLATIONS = dict(bilinear=cv2.INTER_LINEAR, bicubic=cv2.INTER_CUBIC)
_BORDERS = dict(constant=cv2.BORDER_CONSTANT, reflect=cv2.BORDER_REFLECT_101)


def _as_range(value: Union[float, Sequence[float]],
              name: str) -> Tuple[float, float]:
    """Turns a number or a ``(low, high)`` pair into a validated pair."""
    if isinstance(value, Number):
        value = (value, value)
    low, high = (float(v) for v in value)
    if not 0 <= low <= high:
        raise ValueError(f'{name} must be >= 0 or (low, high) with '
                         f'0 <= low <= high; got {value}')
    return low, high


@TRANSFORMS.register_module()
class ElasticDeformation(BaseTransform):
    """Random elastic deformation (imgaug semantics), keypoints included.

    Meant to run after ``TopdownAffine`` (on the network input). Pixels are
    warped with ``cv2.remap``; keypoints are moved to the exact inverse of
    that warp (see the module docstring), and their visibility is kept.

    Note:
        Required Keys:

            - img
            - transformed_keypoints (optional; else ``keypoints``)

        Modified Keys:

            - img
            - transformed_keypoints (or ``keypoints`` when there is no
              ``transformed_keypoints``)

    Args:
        alpha (float | Sequence[float]): Displacement strength, or a range
            ``(low, high)`` drawn uniformly per image, in pixels at
            ``reference_size``. Defaults to ``(0., 500.)`` (the paper).
        sigma (float | Sequence[float]): Smoothing of the displacement
            field (Gaussian std), or a range, in pixels at
            ``reference_size``. Defaults to 30.0 (the paper).
        prob (float): Probability of applying the deformation.
            Defaults to 1.0 (the paper always applies it, with
            ``alpha`` from 0).
        reference_size (Sequence[int], optional): ``(w, h)`` the
            ``alpha``/``sigma`` values refer to; ``sigma`` is scaled by ``s``
            and ``alpha`` by ``s ** 2`` for an image ``s`` times that size.
            ``None`` uses them as given. Defaults to None.
        interpolation (str): ``'bilinear'`` or ``'bicubic'`` (imgaug's
            ``order=3`` in the paper's code). Defaults to ``'bilinear'``.
        border_mode (str): ``'constant'`` or ``'reflect'``.
            Defaults to ``'constant'``.
        border_value (float): Fill value for ``'constant'``. Defaults to 0.
        noise_step (int, optional): Spacing in pixels of the grid the noise
            is drawn on before upsampling; ``None`` picks
            ``max(1, int(sigma_px / 4))`` with ``sigma_px`` the sigma of this
            image (after ``reference_size`` scaling); 1 is the
            full-resolution construction. Defaults to None.
        max_iter (int): Maximum fixed-point iterations for the keypoints.
            Defaults to 20.
        tol (float): Stop when no keypoint moved more than ``tol`` pixels in
            the last iteration. Defaults to 1e-3.
    """

    def __init__(self,
                 alpha: Union[float, Sequence[float]] = (0., 500.),
                 sigma: Union[float, Sequence[float]] = 30.,
                 prob: float = 1.0,
                 reference_size: Optional[Sequence[int]] = None,
                 interpolation: str = 'bilinear',
                 border_mode: str = 'constant',
                 border_value: float = 0.,
                 noise_step: Optional[int] = None,
                 max_iter: int = 20,
                 tol: float = 1e-3) -> None:
        super().__init__()
        self.alpha = _as_range(alpha, 'alpha')
        self.sigma = _as_range(sigma, 'sigma')
        if self.sigma[0] <= 0:
            raise ValueError(f'sigma must be > 0; got {sigma}')
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1]; got {prob}')
        if reference_size is not None:
            reference_size = tuple(int(v) for v in reference_size)
            if len(reference_size) != 2 or min(reference_size) <= 0:
                raise ValueError('reference_size must be a positive (w, h); '
                                 f'got {reference_size}')
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(f'interpolation must be one of '
                             f'{sorted(_INTERPOLATIONS)}; got {interpolation}')
        if border_mode not in _BORDERS:
            raise ValueError(f'border_mode must be one of {sorted(_BORDERS)}'
                             f'; got {border_mode}')
        if noise_step is not None and int(noise_step) < 1:
            raise ValueError(f'noise_step must be >= 1; got {noise_step}')
        if max_iter < 1 or tol <= 0:
            raise ValueError('max_iter must be >= 1 and tol > 0; got '
                             f'{max_iter}, {tol}')
        self.prob = float(prob)
        self.reference_size = reference_size
        self.interpolation = interpolation
        self.border_mode = border_mode
        self.border_value = float(border_value)
        self.noise_step = None if noise_step is None else int(noise_step)
        self.max_iter = int(max_iter)
        self.tol = float(tol)

    @cache_randomness
    def _get_params(self) -> Tuple[bool, float, float, int]:
        """Draws (apply, alpha, sigma, field seed) from ``np.random``."""
        apply = np.random.rand() < self.prob
        alpha = np.random.uniform(*self.alpha)
        sigma = np.random.uniform(*self.sigma)
        seed = np.random.randint(0, 2**31 - 1)
        return bool(apply), float(alpha), float(sigma), int(seed)

    def _scaled(self, alpha: float, sigma: float, width: int,
                height: int) -> Tuple[float, float]:
        """Converts ``alpha``/``sigma`` from reference to actual pixels."""
        if self.reference_size is None:
            return alpha, sigma
        ref_w, ref_h = self.reference_size
        s = math.sqrt(width * height / (ref_w * ref_h))
        return alpha * s * s, sigma * s

    def displacement_field(self, height: int, width: int, alpha: float,
                           sigma: float, seed: int) -> np.ndarray:
        """Builds the displacement field in actual pixels.

        Args:
            height (int): Image height.
            width (int): Image width.
            alpha (float): Strength in pixels of this image.
            sigma (float): Smoothing in pixels of this image.
            seed (int): Seed of the noise.

        Returns:
            np.ndarray: ``(dx, dy)`` per pixel, shape (height, width, 2),
            float32.
        """
        rng = np.random.default_rng(seed)
        step = self.noise_step or max(1, int(sigma / 4))
        # at least two nodes per axis so that a blur can be defined
        grid_w = max(2, math.ceil(width / step))
        grid_h = max(2, math.ceil(height / step))
        step_x, step_y = width / grid_w, height / grid_h
        noise = rng.random((grid_h, grid_w, 2), dtype=np.float32)
        noise = noise * 2 - 1
        if grid_w != width or grid_h != height:
            # each node stands for step_x * step_y fine pixels: keep the
            # variance of the smoothed field equal to the fine-grid one
            noise *= 1.0 / math.sqrt(step_x * step_y)
        sigma_x, sigma_y = sigma / step_x, sigma / step_y
        # kernel truncated at 4 sigma (scipy's default), odd size
        ksize = (2 * math.ceil(4 * sigma_x) + 1,
                 2 * math.ceil(4 * sigma_y) + 1)
        field = cv2.GaussianBlur(
            noise,
            ksize,
            sigmaX=sigma_x,
            sigmaY=sigma_y,
            borderType=cv2.BORDER_REFLECT_101)
        if grid_w != width or grid_h != height:
            field = cv2.resize(
                field, (width, height), interpolation=cv2.INTER_LINEAR)
        field *= alpha
        return field

    @staticmethod
    def sample_field(field: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """Bilinearly interpolates the field at points, clamped to the image.

        Args:
            field (np.ndarray): Shape (H, W, 2).
            xy (np.ndarray): Points in shape (M, 2).

        Returns:
            np.ndarray: Field values in shape (M, 2), float64.
        """
        height, width = field.shape[:2]
        x = np.clip(xy[:, 0], 0, width - 1)
        y = np.clip(xy[:, 1], 0, height - 1)
        x0 = np.minimum(np.floor(x).astype(np.int64), max(width - 2, 0))
        y0 = np.minimum(np.floor(y).astype(np.int64), max(height - 2, 0))
        x1 = np.minimum(x0 + 1, width - 1)
        y1 = np.minimum(y0 + 1, height - 1)
        fx = (x - x0)[:, None]
        fy = (y - y0)[:, None]
        # gather the four neighbours first: converting the whole field to
        # float64 would cost more than the interpolation itself
        f00, f01 = field[y0, x0].astype(np.float64), field[y0, x1]
        f10, f11 = field[y1, x0].astype(np.float64), field[y1, x1]
        top = f00 * (1 - fx) + f01 * fx
        bottom = f10 * (1 - fx) + f11 * fx
        return top * (1 - fy) + bottom * fy

    def invert(self, field: np.ndarray,
               points: np.ndarray) -> Tuple[np.ndarray, float]:
        """Solves ``p + d(p) = k`` for each point ``k``.

        Args:
            field (np.ndarray): Displacement field, shape (H, W, 2).
            points (np.ndarray): Points ``k`` in shape (M, 2), all finite.

        Returns:
            tuple:
            - np.ndarray: The points ``p``, shape (M, 2), float64.
            - float: The final residual ``max |p + d(p) - k|`` in pixels.
        """
        k = points.astype(np.float64)
        p = k.copy()
        for _ in range(self.max_iter):
            p_next = k - self.sample_field(field, p)
            step = np.abs(p_next - p).max(initial=0.)
            p = p_next
            if step < self.tol:
                break
        residual = np.abs(p + self.sample_field(field, p) - k).max(initial=0.)
        return p, float(residual)

    def _warp(self, img: np.ndarray, map_x: np.ndarray,
              map_y: np.ndarray) -> np.ndarray:
        """Warps one image backwards: ``out(p) = img(map(p))``."""
        out = cv2.remap(
            img,
            map_x,
            map_y,
            interpolation=_INTERPOLATIONS[self.interpolation],
            borderMode=_BORDERS[self.border_mode],
            borderValue=self.border_value)
        # cv2 drops a trailing singleton channel axis
        return out.reshape(img.shape)

    def _move_keypoints(self, keypoints: np.ndarray,
                        field: np.ndarray) -> np.ndarray:
        """Moves the (x, y) of (N, K, D) keypoints with the deformation."""
        keypoints = keypoints.copy()
        xy = keypoints[..., :2].reshape(-1, 2)
        # NaN/inf coordinates (unlabelled points) stay as they are
        finite = np.isfinite(xy).all(axis=1)
        if finite.any():
            moved, _ = self.invert(field, xy[finite])
            xy = xy.copy()
            xy[finite] = moved
            keypoints[..., :2] = xy.reshape(keypoints[..., :2].shape)
        return keypoints

    def transform(self, results: dict) -> dict:
        """Deforms ``img`` and moves the keypoints with it.

        Args:
            results (dict): The result dict; ``img`` may be an array or a
                list of same-size arrays (all get the same field).

        Returns:
            dict: The result dict.
        """
        apply, alpha, sigma, seed = self._get_params()
        imgs = results['img']
        first = imgs[0] if isinstance(imgs, list) else imgs
        height, width = first.shape[:2]
        alpha, sigma = self._scaled(alpha, sigma, width, height)
        # alpha == 0 is the identity: skip it so it is exact, not just
        # close (remap would still resample the image)
        if not apply or alpha == 0:
            return results

        field = self.displacement_field(height, width, alpha, sigma, seed)
        map_x = field[..., 0] + np.arange(width, dtype=np.float32)[None, :]
        map_y = field[..., 1] + np.arange(height, dtype=np.float32)[:, None]
        if isinstance(imgs, list):
            results['img'] = [self._warp(i, map_x, map_y) for i in imgs]
        else:
            results['img'] = self._warp(imgs, map_x, map_y)

        # TopdownAffine writes a 0-d placeholder when there are no keypoints
        key = 'transformed_keypoints'
        kpts = results.get(key)
        if kpts is None or np.ndim(kpts) < 2:
            key = 'keypoints'
            kpts = results.get(key)
        if kpts is not None and np.ndim(kpts) >= 2 and np.size(kpts) > 0:
            results[key] = self._move_keypoints(np.asarray(kpts), field)
        return results

    def __repr__(self) -> str:
        """Returns the transform's constructor arguments."""
        return (f'{self.__class__.__name__}(alpha={self.alpha}, '
                f'sigma={self.sigma}, prob={self.prob}, '
                f'reference_size={self.reference_size}, '
                f'interpolation={self.interpolation!r}, '
                f'border_mode={self.border_mode!r}, '
                f'border_value={self.border_value}, '
                f'noise_step={self.noise_step}, max_iter={self.max_iter}, '
                f'tol={self.tol})')
