# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""A validation/test log line a person reads: the headline numbers only.

MMEngine's ``LoggerHook`` asks the runner's log processor for the line
after each validation or test epoch and writes the tag dict it returns to
the visualizer's backends (``LocalVisBackend``: the run's
``vis_data/<timestamp>.json``), a test's to ``<timestamp>.json``.
MMEngine's ``LogProcessor`` prints every key of that dict on one line:
with per-landmark and interval keys, 6,000 characters. :class:`HeadlineLogProcessor` returns the same tag dict, so
every number still reaches the JSON and the other backends, and a line
of the headline numbers with their intervals::

    Epoch(test) [2/2]  MRE 1.47 mm [1.39, 1.56] · SDR 2 mm 78.3% [74.3,
    81.8] · ECE 0.0841 [0.0512, 0.148] · flagged 45/152 · (85 values in
    20261207_045727/20261207_045727.json)
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.runner import LogProcessor
from mmpose.registry import LOG_PROCESSORS

__all__ = ['HeadlineLogProcessor', 'headline_items']

#: MMPose's own metrics' headline keys (COCO, PCK/AUC/EPE, NME), printed
#: as they are when present.
MMPOSE_HEADLINE = ('coco/AP', 'coco/AR', 'PCK', 'AUC', 'EPE', 'NME')


def _number(value) -> Optional[float]:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _interval(tag: Dict, key: str, fmt: str) -> str:
    """`` [low, high]`` of ``key`` when the tag holds both ends."""
    low, high = (_number(tag.get(f'{key}_{end}')) for end in ('low', 'high'))
    if low is None or high is None:
        return ''
    return f' [{low:{fmt}}, {high:{fmt}}]'


def _prefixes(tag: Dict, name: str) -> List[str]:
    """The metric prefixes with a top-level key ``<prefix>/<name>`` (the
    mode's ``val/`` or ``test/`` stripped), in the tag's order."""
    found = []
    for key in tag:
        parts = key.split('/')
        if parts[0] in ('val', 'test'):
            parts = parts[1:]
        if len(parts) == 2 and parts[1] == name:
            found.append(key[:-len(name)])
    return found


def headline_items(tag: Dict) -> List[str]:
    """The headline numbers of a validation/test tag dict, in words.

    Args:
        tag (dict): Metric name -> value, as MMEngine's ``LogProcessor``
            collects them (``<prefix>/<name>``, intervals as
            ``<key>_low`` / ``<key>_high``).

    Returns:
        list[str]: ``MRE 1.47 mm [1.39, 1.56]`` (CephalometricMetric, mm),
        ``SDR 2 mm 78.3% [74.3, 81.8]``, ``ECE 0.0841 [...]``
        (UncertaintyMetric), ``flagged 45/152`` (its Good/Erroneous
        counts), ``coverage 0.89 [...]`` (its first conformal level) and
        MMPose's own headline keys (:data:`MMPOSE_HEADLINE`).
    """
    items = []
    for p in _prefixes(tag, 'SDR_2mm'):
        mre = _number(tag.get(f'{p}MRE'))
        if mre is not None:
            items.append(f'MRE {mre:.2f} mm{_interval(tag, p + "MRE", ".2f")}')
        items.append(f'SDR 2 mm {float(tag[p + "SDR_2mm"]):.1f}%'
                     f'{_interval(tag, p + "SDR_2mm", ".1f")}')
    for p in _prefixes(tag, 'ECE'):
        items.append(f'ECE {float(tag[p + "ECE"]):.3g}'
                     f'{_interval(tag, p + "ECE", ".3g")}')
        flagged = _number(tag.get(f'{p}erroneous/count'))
        good = _number(tag.get(f'{p}good/count'))
        if flagged is not None and good is not None:
            items.append(f'flagged {flagged:.0f}/{flagged + good:.0f}')
        coverage = _number(tag.get(f'{p}conformal/coverage'))
        if coverage is not None:
            items.append(f'coverage {coverage:.2f}'
                         f'{_interval(tag, p + "conformal/coverage", ".2f")}')
    for key in MMPOSE_HEADLINE:
        for mode_key in (key, f'val/{key}', f'test/{key}'):
            value = _number(tag.get(mode_key))
            if value is not None:
                items.append(f'{key} {value:.4f}')
                break
    return items


@LOG_PROCESSORS.register_module()
class HeadlineLogProcessor(LogProcessor):
    """``LogProcessor`` whose validation/test line holds the headline
    numbers (:func:`headline_items`) and names the JSON holding all of
    them; the tag dict it returns (what ``LoggerHook`` writes to the
    visualizer's backends) is ``LogProcessor``'s, unchanged. Training lines
    are ``LogProcessor``'s.

    Args:
        full_line (bool): Print MMEngine's full line instead (every key).
        **kwargs: As ``LogProcessor`` (``window_size``, ``by_epoch``, ...).
    """

    def __init__(self, full_line: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.full_line = full_line

    def get_log_after_epoch(self,
                            runner,
                            batch_idx: int,
                            mode: str,
                            with_non_scalar: bool = False) -> Tuple[dict, str]:
        """As ``LogProcessor.get_log_after_epoch``; the line shortened."""
        tag, line = super().get_log_after_epoch(runner, batch_idx, mode,
                                                with_non_scalar)
        if self.full_line:
            return tag, line
        return tag, headline_line(line.split('  ', 1)[0], tag,
                                  _json_log(runner, mode))


def _json_log(runner, mode: str) -> Optional[str]:
    """Where ``LoggerHook`` writes the values, relative to the work dir:
    a validation's to the visualizer's backends (the runner's default
    ``LocalVisBackend``: ``vis_data/<timestamp>.json``), a test's to
    ``<timestamp>.json`` in the log folder."""
    log_dir, timestamp = (getattr(runner, name, None)
                          for name in ('log_dir', 'timestamp'))
    if not log_dir or not timestamp:
        return None
    folder = osp.join(log_dir, 'vis_data') if mode == 'val' else log_dir
    path = osp.join(folder, f'{timestamp}.json')
    work_dir = getattr(runner, 'work_dir', None)
    return osp.relpath(path, work_dir) if work_dir else path


def headline_line(head: str, tag: Dict, json_log: Optional[str],
                  sep: str = ' · ') -> str:
    """``head`` (``Epoch(val) [1][2/2]``), the headline items, and how many
    values the JSON ``json_log`` holds; without a headline item the first
    few keys as MMEngine prints them."""
    items = headline_items(tag)
    shown: Sequence[str] = items or [
        f'{k}: {v:.4f}' if isinstance(v, float) else f'{k}: {v}'
        for k, v in list(tag.items())[:6]
    ]
    where = f' in {json_log}' if json_log else ''
    return (f'{head}  ' + sep.join(shown) +
            f'{sep}({len(tag)} values{where})')
