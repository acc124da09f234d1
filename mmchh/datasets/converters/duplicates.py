# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The same radiograph twice: pixel hashes, perceptual hashes and the units
a split selection must keep together.

- :func:`image_hashes`: from the decoded pixels (so a PNG and a TIFF of
  the same pixels match), the exact ``pixel_sha256`` (SHA-256 of the shape,
  the dtype and the bytes: an 8-bit and a 16-bit copy of one image differ
  here) and the perceptual ``phash`` (64 bits, as ``imagehash.phash``
  computes it: the 8x8 lowest frequencies of the 2-D DCT of a 32x32
  greyscale thumbnail, each compared with their median). The thumbnail is
  kept (in memory only) to verify near pairs on pixels.
- :func:`find_duplicates`: exact duplicates (one ``pixel_sha256``) and near
  duplicates: phash Hamming distance <= :data:`PHASH_MAX_DISTANCE`, aspect
  ratios within :data:`MAX_ASPECT_DIFFERENCE`, and verified on pixels:
  the thumbnails' correlation >= :data:`MIN_CORRELATION` (phash and the
  correlation ignore brightness scale and offset, so an 8-bit and a 16-bit
  copy, or a resized or recompressed one, are near duplicates). The
  correlation is of the thumbnails' detail (each less its Gaussian blur,
  sigma :data:`DETAIL_SIGMA` pixels): whole thumbnails of two different
  cephalograms correlate above 0.95 (the same anatomy in the same place),
  their details do not (measured on the synthetic set: at most 0.87
  between different images, at least 0.995 between an image and its
  16-bit, resized, JPEG-recompressed, gamma-changed, noisy or blurred
  copy).
- :func:`split_units`: the images that must land in one split: the union
  of the duplicate clusters and the patient groups.
"""
import hashlib
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .embedded_image import greyscale

__all__ = [
    'PHASH_MAX_DISTANCE', 'MIN_CORRELATION', 'DETAIL_SIGMA', 'MAX_ASPECT_DIFFERENCE',
    'DUPLICATE_POLICIES', 'ImageHashes', 'image_hashes', 'pixel_sha256',
    'DuplicatePair', 'find_duplicates', 'duplicate_clusters', 'split_units'
]

#: Largest phash Hamming distance (of 64 bits) of a near-duplicate pair.
PHASH_MAX_DISTANCE = 6
#: Smallest correlation of the two 32x32 thumbnails of a near pair.
MIN_CORRELATION = 0.95
#: Sigma (thumbnail pixels) of the blur removed before the correlation.
DETAIL_SIGMA = 2.0
#: Largest relative difference of the aspect ratios of a near pair.
MAX_ASPECT_DIFFERENCE = 0.05
#: ``--duplicates``: keep each cluster in one split, keep only its first
#: image (by name), or stop at the first pair.
DUPLICATE_POLICIES = ('together', 'drop', 'error')

_THUMB = 32
_LOW = 8


@dataclass(frozen=True)
class ImageHashes:
    """An image's fingerprints.

    Attributes:
        pixel_sha256 (str): Hex SHA-256 of shape, dtype and pixel bytes.
        phash (str): The 64-bit perceptual hash, 16 hex digits.
        aspect (float): width / height.
        detail (np.ndarray): (32, 32) float64: the greyscale thumbnail less
            its blur, for verifying near pairs (not written anywhere).
    """
    pixel_sha256: str
    phash: str
    aspect: float
    detail: np.ndarray


def pixel_sha256(array: np.ndarray) -> str:
    """Hex SHA-256 of an array's shape, dtype and C-order bytes."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(
        f'{array.shape}|{array.dtype.str}|'.encode())
    digest.update(memoryview(array).cast('B'))
    return digest.hexdigest()


def image_hashes(array: np.ndarray) -> ImageHashes:
    """The fingerprints of decoded pixels (see the module docstring).

    Note:
        - array: (H, W) or (H, W, C), any numeric dtype
    """
    import cv2
    from scipy.fft import dctn
    thumb = cv2.resize(greyscale(array), (_THUMB, _THUMB),
                       interpolation=cv2.INTER_AREA).astype(np.float64)
    low = dctn(thumb, type=2)[:_LOW, :_LOW]
    bits = (low > np.median(low)).reshape(-1)
    return ImageHashes(
        pixel_sha256=pixel_sha256(array),
        phash=np.packbits(bits).tobytes().hex(),
        aspect=array.shape[1] / array.shape[0],
        detail=thumb - cv2.GaussianBlur(thumb, (0, 0), DETAIL_SIGMA))


@dataclass(frozen=True)
class DuplicatePair:
    """Two images showing one radiograph.

    Attributes:
        first (str): The first image's name (the smaller).
        second (str): The other's.
        kind (str): ``'exact'`` (same pixels) or ``'near'``.
        distance (int): phash Hamming distance.
        correlation (float): Of the two thumbnails' details.
    """
    first: str
    second: str
    kind: str
    distance: int
    correlation: float


#: Set bits of each byte value.
_POPCOUNT = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None],
                          axis=1).sum(1).astype(np.uint8)


def _hash_bytes(phashes: Sequence[str]) -> np.ndarray:
    """(N, 8) uint8 bytes of hex phashes."""
    return np.frombuffer(b''.join(bytes.fromhex(h) for h in phashes),
                         np.uint8).reshape(len(phashes), -1)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    norm = np.sqrt((a * a).sum() * (b * b).sum())
    if norm == 0:  # a flat image: only an identical flat one matches
        return 1.0 if np.array_equal(a, b) else 0.0
    return float((a * b).sum() / norm)


def find_duplicates(hashes: Dict[str, ImageHashes],
                    max_distance: int = PHASH_MAX_DISTANCE,
                    min_correlation: float = MIN_CORRELATION,
                    block: int = 256) -> List[DuplicatePair]:
    """Every exact and near duplicate pair among ``hashes`` (name ->
    :class:`ImageHashes`), sorted by name.

    The phash distances are computed in blocks of ``block`` rows (memory
    O(block * N)); only the pairs within ``max_distance`` are verified.
    """
    names = sorted(hashes)
    if len(names) < 2:
        return []
    codes = _hash_bytes([hashes[n].phash for n in names])
    pairs = []
    for start in range(0, len(names), block):
        rows = codes[start:start + block]
        dist = _POPCOUNT[rows[:, None, :] ^ codes[None, :, :]].sum(
            -1, dtype=np.int64)
        for i, j in zip(*np.nonzero(dist <= max_distance)):
            i = int(i) + start
            if j <= i:
                continue
            a, b = hashes[names[i]], hashes[names[j]]
            d = int(dist[i - start, j])
            if a.pixel_sha256 == b.pixel_sha256:
                pairs.append(DuplicatePair(names[i], names[j], 'exact', d,
                                           1.0))
                continue
            if abs(a.aspect / b.aspect - 1) > MAX_ASPECT_DIFFERENCE:
                continue
            corr = _correlation(a.detail, b.detail)
            if corr >= min_correlation:
                pairs.append(DuplicatePair(names[i], names[j], 'near', d,
                                           round(corr, 6)))
    return pairs


class _Union:
    """Union-find over names; each set is named by its smallest member."""

    def __init__(self, names: Sequence[str]):
        self.parent = {n: n for n in names}

    def find(self, n: str) -> str:
        while self.parent[n] != n:
            self.parent[n] = self.parent[self.parent[n]]
            n = self.parent[n]
        return n

    def join(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def sets(self) -> List[List[str]]:
        found: Dict[str, List[str]] = {}
        for n in sorted(self.parent):
            found.setdefault(self.find(n), []).append(n)
        return sorted(found.values())


def duplicate_clusters(names: Sequence[str],
                       pairs: Sequence[DuplicatePair]) -> List[List[str]]:
    """The clusters of two or more images joined by ``pairs`` (each sorted,
    sorted by their first name)."""
    union = _Union(names)
    for p in pairs:
        union.join(p.first, p.second)
    return [s for s in union.sets() if len(s) > 1]


def split_units(names: Sequence[str],
                clusters: Sequence[Sequence[str]] = (),
                groups: Optional[Dict[str, str]] = None
                ) -> List[Tuple[str, ...]]:
    """The units a split selection moves whole: images joined by a
    duplicate cluster or a shared group (transitively), each sorted, sorted
    by their first name. Without clusters and groups every image is its
    own unit, in name order."""
    union = _Union(names)
    for cluster in clusters:
        for other in cluster[1:]:
            union.join(cluster[0], other)
    first_of: Dict[str, str] = {}
    for name in sorted(names):
        group = (groups or {}).get(name)
        if group is not None:
            union.join(first_of.setdefault(group, name), name)
    return [tuple(s) for s in union.sets()]
