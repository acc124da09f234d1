# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""When a converted split is too small to fit or to test on.

A conversion of few images still converts (a reviewed batch of one image
is a test set), but a split below its minimum here is named with a warning
in the converter's summary and in ``conversion_report.json``
(``small_splits``), saying what it is too small for. The minimums are the
converter's, in this one place (docs/own_data.md, "Small data"):

- ``train`` 10: fewer images than this trains a model that has seen too
  little anatomy to generalise; the run is a smoke test.
- ``val`` 3: the best checkpoint is picked by the MRE of these images; on
  one or two it picks by noise.
- ``calib`` 10: the per-landmark temperatures and the ERE flag threshold
  are fitted on these images; docs/method.md ("Do no harm") measured that
  below 10 calibration images the do-no-harm check mostly falls back to a
  pooled temperature or T = 1, and the flag threshold of a few images
  carries a wide interval.
- ``test`` 5: scores (MRE, SDR, the flag's table) over fewer images have
  intervals too wide to compare runs; one image is still scored.

A split that is not written (``--test-fraction 0`` leaves no test split, a
test-only conversion no train/val/calib split) is not warned about.
"""
from typing import Dict, List, Sequence

__all__ = ['SMALL_SPLIT_IMAGES', 'small_splits']

#: split -> (fewest images without a warning, what fewer are too few for).
SMALL_SPLIT_IMAGES = dict(
    train=(10, 'too few to train a model that generalises (a smoke test)'),
    val=(3, 'too few to pick the best checkpoint by their MRE'),
    calib=(10, 'too few to fit the temperatures and the ERE flag threshold '
           '(do-no-harm then keeps T = 1 or a pooled T; the threshold\'s '
           'interval is wide)'),
    test=(5, 'too few to score with a usable interval'))


def small_splits(images_per_split: Dict[str, int],
                 written: Sequence[str]) -> List[dict]:
    """The written splits below :data:`SMALL_SPLIT_IMAGES`.

    Args:
        images_per_split (dict): split -> number of images.
        written (Sequence[str]): The splits written.

    Returns:
        list[dict]: per small split, in ``written`` order: ``split``,
        ``images``, ``minimum`` and ``why`` (what it is too small for).
    """
    found = []
    for split in written:
        if split not in SMALL_SPLIT_IMAGES:
            continue
        minimum, why = SMALL_SPLIT_IMAGES[split]
        count = images_per_split.get(split, 0)
        if count < minimum:
            found.append(
                dict(split=split, images=count, minimum=minimum, why=why))
    return found
