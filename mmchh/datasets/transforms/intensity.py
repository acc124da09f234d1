# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Random intensity scaling followed by a random gamma (pixel-only).

The paper's photometric augmentation is imgaug's ``Multiply`` followed by
``GammaContrast`` with its default gamma range (0.7, 1.7):
``out = max * (clip(img * m, 0, max) / max) ** gamma``. We default to
``m ~ U(0.5, 1.0)`` as the team decided; the reference code
(jfm15/ContourHuggingHeatmaps) uses ``Multiply((0.5, 1.5))``, i.e.
``multiply_range=(0.5, 1.5)``.

Why our own: MMPose 1.3.2 has no transform doing this. Its
``PhotometricDistortion`` adds a brightness offset and applies contrast with
probability 0.5, then HSV saturation/hue changes and channel swaps (needs 3
channels; our radiographs are loaded as grayscale) and has no gamma; its
``Albumentation`` wrapper would need albumentations, which we do not install
(see ``elastic.py``). mmcv 2.1 has no gamma transform either.
"""
from typing import Sequence, Tuple

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmpose.registry import TRANSFORMS


def _as_range(value: Sequence[float], name: str) -> Tuple[float, float]:
    """Validates a ``(low, high)`` pair of positive floats."""
    low, high = (float(v) for v in value)
    if not 0 < low <= high:
        raise ValueError(f'{name} must be (low, high) with 0 < low <= high; '
                         f'got {value}')
    return low, high


@TRANSFORMS.register_module()
class RandomIntensityGamma(BaseTransform):
    """Multiplies the image by a random factor, then applies a random gamma.

    With ``m ~ U(multiply_range)`` and ``g ~ U(gamma_range)``, every pixel
    becomes ``max * (clip(v * m, 0, max) / max) ** g``. ``max`` is the dtype's
    maximum for integer images (255 for uint8, where the whole operation is
    one lookup table with a single rounding) and ``max_value`` for float
    images, which keep their dtype. Keypoints are not touched.

    Note:
        Required Keys:

            - img

        Modified Keys:

            - img

    Args:
        multiply_range (Sequence[float]): Range of the intensity factor.
            Defaults to ``(0.5, 1.0)``.
        gamma_range (Sequence[float]): Range of the gamma exponent;
            ``(1.0, 1.0)`` disables it. Defaults to imgaug's
            ``GammaContrast`` default ``(0.7, 1.7)``.
        max_value (float): White level of float images: values are clipped
            to ``[0, max_value]`` and gamma acts on ``v / max_value``. MMPose
            keeps images in [0, 255] until the data preprocessor, hence the
            default 255.0; use 1.0 for images scaled to [0, 1].
        prob (float): Probability of applying the transform. Defaults to 1.0.
    """

    def __init__(self,
                 multiply_range: Sequence[float] = (0.5, 1.0),
                 gamma_range: Sequence[float] = (0.7, 1.7),
                 max_value: float = 255.0,
                 prob: float = 1.0) -> None:
        super().__init__()
        self.multiply_range = _as_range(multiply_range, 'multiply_range')
        self.gamma_range = _as_range(gamma_range, 'gamma_range')
        if max_value <= 0:
            raise ValueError(f'max_value must be > 0; got {max_value}')
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1]; got {prob}')
        self.max_value = float(max_value)
        self.prob = float(prob)

    @cache_randomness
    def _get_params(self) -> Tuple[bool, float, float]:
        """Draws (apply, multiplier, gamma) from the global numpy state."""
        apply = np.random.rand() < self.prob
        factor = np.random.uniform(*self.multiply_range)
        gamma = np.random.uniform(*self.gamma_range)
        return bool(apply), float(factor), float(gamma)

    def _apply(self, img: np.ndarray, factor: float,
               gamma: float) -> np.ndarray:
        """Applies ``factor`` and ``gamma`` to one image."""
        if img.dtype == np.uint8:
            # One 256-entry table: exact for every value, fast (cv2.LUT) and
            # rounded once instead of after each step.
            values = np.arange(256, dtype=np.float64)
            lut = 255.0 * (np.clip(values * factor, 0, 255) / 255.0)**gamma
            lut = np.clip(np.rint(lut), 0, 255).astype(np.uint8)
            out = cv2.LUT(img, lut)
            # cv2.LUT drops a trailing singleton channel axis
            return out.reshape(img.shape)
        if np.issubdtype(img.dtype, np.integer):
            top = float(np.iinfo(img.dtype).max)
            out = top * (np.clip(img * factor, 0, top) / top)**gamma
            return np.clip(np.rint(out), 0, top).astype(img.dtype)
        if np.issubdtype(img.dtype, np.floating):
            top = self.max_value
            scaled = np.clip(img * factor, 0, top) / top
            return (top * scaled**gamma).astype(img.dtype, copy=False)
        raise TypeError(f'RandomIntensityGamma: unsupported dtype {img.dtype}')

    def transform(self, results: dict) -> dict:
        """Applies the random intensity factor and gamma to ``img``.

        Args:
            results (dict): The result dict; ``img`` may be an array or a
                list of arrays (all get the same factor and gamma).

        Returns:
            dict: The result dict.
        """
        apply, factor, gamma = self._get_params()
        if not apply:
            return results
        img = results['img']
        if isinstance(img, list):
            results['img'] = [self._apply(i, factor, gamma) for i in img]
        else:
            results['img'] = self._apply(img, factor, gamma)
        return results

    def __repr__(self) -> str:
        """Returns the transform's constructor arguments."""
        return (f'{self.__class__.__name__}('
                f'multiply_range={self.multiply_range}, '
                f'gamma_range={self.gamma_range}, '
                f'max_value={self.max_value}, prob={self.prob})')
