# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
from typing import List, Optional, Tuple, Union

import numpy as np
import torch
from mmpose.codecs.base import BaseKeypointCodec
from mmpose.registry import KEYPOINT_CODECS
from torch import Tensor

from .utils import (HeatmapFrame, expected_radial_error, grid_scale,
                    heatmap_cell, heatmap_mode, refine_subpixel)


@KEYPOINT_CODECS.register_module()
class SoftmaxHeatmap(BaseKeypointCodec):
    """One-hot heatmap targets for 2D-softmax landmark classification.

    The training target of each landmark is the single heatmap pixel that
    holds it (the paper's Eq. 2). Instead of a dense one-hot map (19 x 800 x
    640 floats = 39 MB per image), the codec emits the flat index of that
    pixel: O(K) integers per instance, consumed by
    :class:`~mmchh.models.losses.SoftmaxNLLLoss`.

    Grid convention (shared by encode, decode, the head and the API; see
    :mod:`mmchh.codecs.utils.heatmap_grid`): with ``(sx, sy) =
    input_size / heatmap_size``, heatmap pixel ``u`` is the block of input
    pixels ``[u * sx - 0.5, (u + 1) * sx - 0.5)``, centred at
    ``(u + 0.5) * sx - 0.5``. A keypoint ``x`` is assigned to pixel
    ``floor((x + 0.5) / sx)``, so every point of the input image has a
    pixel (none is lost at the borders at low resolution) and a pixel
    decodes to its centre. At full resolution this is rounding to the
    nearest pixel, half-way points going up. (MMPose's ``MSRAHeatmap``
    centres pixel ``u`` at ``u * sx`` instead, which loses keypoints within
    ``sx / 2`` of the right/bottom border and needs ``shift_heatmap`` for
    flip test.)

    Decoding picks the mode of each probability map (first maximum in
    row-major order), its probability as the score, and optionally the
    Expected Radial Error of the map in input-image pixels. With
    ``subpixel_radius=r`` the reported position is the probability-weighted
    mean of the ``(2r+1) x (2r+1)`` window around the mode (useful when
    heatmaps are smaller than the input); scores, ERE and every probability
    stay those of the unrefined maps.

    Note:
        - instance number: N
        - keypoint number: K
        - heatmap size: [W, H]

    Args:
        input_size (tuple): Input image size in [w, h].
        heatmap_size (tuple): Heatmap size in [W, H]. May be smaller than the
            input (e.g. 1/4); coordinates and ERE are scaled accordingly.
        ere_threshold (float): Fraction of the mode's probability below which
            pixels are ignored by ERE (the paper's 5 %). Defaults to 0.05.
        subpixel_radius (int): 0 (default) reports the mode pixel's centre;
            r >= 1 reports the probability-weighted mean position in the
            ``(2r+1)^2`` window around the mode.
        annotator_targets (bool): Encode every annotator's point instead of
            the ground truth: the target of a landmark is the distribution
            with mass 1/A on each of its A annotators' pixels (coincident
            points add up; annotators outside the map are dropped and the
            rest renormalised). Needs ``AttachAnnotatorKeypoints`` /
            ``DetachAnnotatorKeypoints`` in the training pipeline. Defaults
            to False (one-hot on the ground truth).

    Encoded (with ``annotator_targets``, ``heatmap_indices`` is (N, K, A)
    and ``heatmap_index_weights`` (N, K, A) holds the target masses, summing
    to 1 over A wherever the keypoint counts):
        - heatmap_indices (np.ndarray): Flat target index ``j * W + i`` in
          shape (N, K), int64. 0 where the keypoint does not count.
        - keypoint_weights (np.ndarray): Shape (N, K), float32: the
          visibility, set to 0 for keypoints outside the heatmap or with
          non-finite coordinates (an index is never wrapped or clipped into
          the map).
        - heatmap_grid (np.ndarray): Shape (N, 4), int64: the grid the
          indices were encoded for, ``(heatmap W, H, input w, h)`` per
          instance. The head compares it with its own decoder at the first
          training step, so a ``GenerateTarget`` codec that differs from
          ``model.head.decoder`` fails loudly instead of training on
          indices of another grid.
    """

    label_mapping_table = dict(
        heatmap_indices='heatmap_indices',
        keypoint_weights='keypoint_weights',
        heatmap_grid='heatmap_grid')
    # filled in by DetachAnnotatorKeypoints; read only with annotator_targets
    auxiliary_encode_keys = {'transformed_annotator_keypoints'}

    def __init__(self,
                 input_size: Tuple[int, int],
                 heatmap_size: Tuple[int, int],
                 ere_threshold: float = 0.05,
                 subpixel_radius: int = 0,
                 annotator_targets: bool = False) -> None:
        super().__init__()
        self.input_size = tuple(int(v) for v in input_size)
        self.heatmap_size = tuple(int(v) for v in heatmap_size)
        if len(self.input_size) != 2 or len(self.heatmap_size) != 2 or min(
                self.input_size + self.heatmap_size) <= 0:
            raise ValueError('SoftmaxHeatmap: input_size and heatmap_size '
                             'must be positive (w, h) pairs; got '
                             f'{input_size} and {heatmap_size}')
        if not 0 <= ere_threshold < 1:
            raise ValueError('SoftmaxHeatmap: ere_threshold must be in [0, 1);'
                             f' got {ere_threshold}')
        self.ere_threshold = ere_threshold
        if int(subpixel_radius) != subpixel_radius or subpixel_radius < 0:
            raise ValueError('SoftmaxHeatmap: subpixel_radius must be an '
                             f'integer >= 0; got {subpixel_radius}')
        self.subpixel_radius = int(subpixel_radius)
        self.annotator_targets = bool(annotator_targets)
        if self.annotator_targets:
            self.label_mapping_table = dict(
                self.label_mapping_table,
                heatmap_index_weights='heatmap_index_weights')
        self.scale_factor = grid_scale(self.input_size, self.heatmap_size)
        # the grid alone (no box, no spacing): heatmap <-> model input
        self.grid_frame = HeatmapFrame(self.heatmap_size, self.input_size)

    def encode(self,
               keypoints: np.ndarray,
               keypoints_visible: Optional[np.ndarray] = None,
               transformed_annotator_keypoints: Optional[np.ndarray] = None
               ) -> dict:
        """Encodes keypoints into flat heatmap indices and weights.

        Args:
            keypoints (np.ndarray): Keypoint coordinates in input space, in
                shape (N, K, D), D >= 2 (only x and y are used).
            keypoints_visible (np.ndarray): Visibility in shape (N, K).
                Defaults to all visible.
            transformed_annotator_keypoints (np.ndarray, optional): Every
                annotator's points in input space, (N, A, K, 2); used (and
                required) only with ``annotator_targets``.

        Returns:
            dict: ``heatmap_indices`` (N, K) int64, ``keypoint_weights``
            (N, K) float32 and ``heatmap_grid`` (N, 4) int64; with
            ``annotator_targets`` ``heatmap_indices`` (N, K, A) and
            ``heatmap_index_weights`` (N, K, A) float32.
        """
        if self.annotator_targets:
            encoded = self._encode_annotators(
                keypoints, keypoints_visible, transformed_annotator_keypoints)
        else:
            encoded = self.encode_one_hot(keypoints, keypoints_visible)
        encoded['heatmap_grid'] = self.grid_label(
            len(encoded['keypoint_weights']))
        return encoded

    @property
    def grid(self) -> Tuple[int, int, int, int]:
        """``(heatmap W, H, input w, h)``: the grid this codec encodes for."""
        return self.heatmap_size + self.input_size

    def grid_label(self, num_instances: int) -> np.ndarray:
        """The ``heatmap_grid`` label: :attr:`grid` per instance, (N, 4)."""
        return np.tile(np.asarray(self.grid, dtype=np.int64),
                       (num_instances, 1))

    def encode_one_hot(self,
                       keypoints: np.ndarray,
                       keypoints_visible: Optional[np.ndarray] = None
                       ) -> dict:
        """The one-hot encoding of ``keypoints`` (whatever the targets).

        What :meth:`encode` returns without ``annotator_targets``; the head
        also uses it to score predictions against the ground truth.

        Returns:
            dict: ``heatmap_indices`` (N, K) int64 and ``keypoint_weights``
            (N, K) float32.
        """
        keypoints = np.asarray(keypoints)
        if keypoints.ndim != 3 or keypoints.shape[-1] < 2:
            raise ValueError('SoftmaxHeatmap.encode expects keypoints of '
                             'shape (N, K, D>=2); got '
                             f'{keypoints.shape}')
        n, k = keypoints.shape[:2]
        if keypoints_visible is None:
            keypoints_visible = np.ones((n, k), dtype=np.float32)
        weights = np.asarray(keypoints_visible, dtype=np.float32).reshape(
            n, k).copy()

        index, inside = self._cells(keypoints[..., :2])
        weights[~inside] = 0.0
        return dict(heatmap_indices=index, keypoint_weights=weights)

    def _cells(self, xy: np.ndarray):
        """(index, inside) of input points (..., 2) on the heatmap."""
        w, h = self.heatmap_size
        xy = np.asarray(xy, dtype=np.float64)
        finite = np.isfinite(xy).all(axis=-1)
        cell = heatmap_cell(
            np.where(finite[..., None], xy, -1e9), self.scale_factor)
        inside = finite & (cell[..., 0] >= 0) & (cell[..., 0] < w) & (
            cell[..., 1] >= 0) & (cell[..., 1] < h)
        index = np.where(inside, cell[..., 1] * w + cell[..., 0], 0)
        return index.astype(np.int64), inside

    def _encode_annotators(self, keypoints, keypoints_visible, annotators):
        keypoints = np.asarray(keypoints)
        if keypoints.ndim != 3:
            raise ValueError('SoftmaxHeatmap.encode expects keypoints of '
                             f'shape (N, K, D>=2); got {keypoints.shape}')
        n, k = keypoints.shape[:2]
        if annotators is None:
            raise ValueError(
                'SoftmaxHeatmap(annotator_targets=True) needs every '
                'annotator\'s points: put AttachAnnotatorKeypoints right '
                'after LoadImage and DetachAnnotatorKeypoints right before '
                'GenerateTarget in the training pipeline')
        annotators = np.asarray(annotators, dtype=np.float64)
        if annotators.ndim != 4 or annotators.shape[0] != n or \
                annotators.shape[2] != k or annotators.shape[3] < 2:
            raise ValueError(
                'SoftmaxHeatmap: annotator points must have shape (N, A, K, '
                f'2) = ({n}, A, {k}, 2); got {annotators.shape}')
        if keypoints_visible is None:
            keypoints_visible = np.ones((n, k), dtype=np.float32)
        vis = np.asarray(keypoints_visible, dtype=np.float32).reshape(n, k)
        index, inside = self._cells(annotators[..., :2])  # (N, A, K)
        inside = inside & (vis[:, None] > 0)
        count = inside.sum(axis=1)  # (N, K)
        mass = inside / np.maximum(count, 1)[:, None]
        weights = np.where(count > 0, vis, 0.0).astype(np.float32)
        return dict(
            heatmap_indices=np.ascontiguousarray(
                index.transpose(0, 2, 1)),
            heatmap_index_weights=np.ascontiguousarray(
                mass.transpose(0, 2, 1)).astype(np.float32),
            keypoint_weights=weights)

    def decode_tensors(self,
                       probs: Tensor,
                       valid: Optional[Tensor] = None,
                       return_valid: bool = False) -> Tuple[Tensor, ...]:
        """Decodes a batch of probability maps on their device.

        A map is invalid when its values are not all finite or it has no
        positive value (it is not a distribution); its keypoint, score and
        ERE are then NaN -- never a plausible position such as (0, 0). The
        test costs nothing extra: the maximum that gives the mode is NaN
        or infinite exactly when the map holds a NaN or +inf.

        Args:
            probs (Tensor): Probability maps in shape (B, K, H, W).
            valid (Tensor, optional): (B, K) bool, maps already known to be
                invalid (False), e.g. from non-finite logits.
            return_valid (bool): Also return the (B, K) validity.

        Returns:
            tuple:
            - keypoints (Tensor): Mode pixel centres (or, with
              ``subpixel_radius``, the refined positions) in input space,
              shape (B, K, 2).
            - scores (Tensor): Probability at the mode, shape (B, K).
            - ere (Tensor): Expected Radial Error in input pixels, (B, K).
            - valid (Tensor): (B, K) bool, only with ``return_valid``.
        """
        if probs.ndim != 4 or tuple(probs.shape[-2:]) != (
                self.heatmap_size[1], self.heatmap_size[0]):
            raise ValueError('SoftmaxHeatmap: expected maps of shape (B, K, '
                             f'{self.heatmap_size[1]}, {self.heatmap_size[0]})'
                             f'; got {tuple(probs.shape)}')
        scale = torch.as_tensor(
            self.scale_factor, dtype=torch.float32, device=probs.device)
        coords, scores = heatmap_mode(probs)
        ok = torch.isfinite(scores) & (scores > 0)
        if valid is not None:
            ok = ok & valid.to(device=ok.device, dtype=torch.bool)
        ere = expected_radial_error(
            probs, threshold=self.ere_threshold, pixel_size=scale)
        if self.subpixel_radius:
            coords = refine_subpixel(probs, coords, self.subpixel_radius)
        nan = torch.full((), float('nan'), device=probs.device)
        keypoints = torch.where(
            ok[..., None], self.grid_frame.heatmap_to_input(coords.float()),
            nan)
        scores = torch.where(ok, scores, nan.to(scores.dtype))
        ere = torch.where(ok, ere, nan.to(ere.dtype))
        if return_valid:
            return keypoints, scores, ere, ok
        return keypoints, scores, ere

    def batch_decode(
        self,
        batch_heatmaps: Tensor,
        return_ere: bool = False
    ) -> Union[Tuple[List[np.ndarray], List[np.ndarray]], Tuple[
            List[np.ndarray], List[np.ndarray], List[np.ndarray]]]:
        """Decodes a batch in torch, on the maps' device.

        Only the O(B * K) results are copied to the host.

        Args:
            batch_heatmaps (Tensor): Probability maps in shape (B, K, H, W).
            return_ere (bool): Also return each map's ERE. Off by default so
                the return value matches MMPose's ``(keypoints, scores)``.

        Returns:
            tuple: Lists (one entry per sample) of keypoints (1, K, 2),
            scores (1, K) and, with ``return_ere``, ERE (1, K) in input
            pixels, as numpy arrays.
        """
        keypoints, scores, ere = self.decode_tensors(batch_heatmaps)
        out = tuple(
            list(t[:, None].detach().float().cpu().numpy())
            for t in (keypoints, scores, ere))
        return out if return_ere else out[:2]

    def decode(self, encoded: np.ndarray, return_ere: bool = False):
        """Decodes the probability maps of one instance.

        Args:
            encoded (np.ndarray): Probability maps in shape (K, H, W).
            return_ere (bool): Also return the ERE of each map.

        Returns:
            tuple: keypoints (1, K, 2), scores (1, K) and, with
            ``return_ere``, ERE (1, K) in input pixels.
        """
        probs = torch.from_numpy(np.ascontiguousarray(encoded))[None]
        return tuple(t[0] for t in self.batch_decode(probs, return_ere))
