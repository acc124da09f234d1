# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The legend band under an overlay: the colour key, what the flags rest
on, what the outlines are, the invalid landmarks and, when labels carry
numbers, which landmark each number is."""
from typing import List, Optional, Sequence, Tuple

import numpy as np

from mmchh.models.heads.flag_basis import flag_legend
from .overlay_style import (FLAGGED_BGR, UNKNOWN_BGR, CanvasStyle,
                            outlined_text)

__all__ = ['LEGEND_LINES', 'legend_lines', 'legend_band_height',
           'draw_legend_band', 'wrap_line']

#: Text lines the legend band has room for at least (overlays of one
#: image line up whatever is written).
LEGEND_LINES = 5

_WHITE = (255, 255, 255)

_REGION_LINE = 'blocky outline: {:.3g} % conformal region'

# between a legend line's entries: where a line is cut first
_ENTRY_SEP = '   '


def _configuration_legend(status) -> str:
    """The configuration flag of ``status`` (a result's
    ``configuration_status``) in a few words."""
    if status['status'] == 'used':
        # short: the legend fits a 512 px wide overlay
        text = f'implausible: > {status["threshold"]:.3g} sigma off the shape'
        if status.get('alpha') is not None:
            text += f' (alpha {status["alpha"]:g})'
        return text
    if status['status'] == 'none':
        return 'implausible: not fitted (no configuration model)'
    if status.get('num_scores') is not None and \
            status.get('alpha') is not None:
        return (f'implausible: no threshold ({status["num_scores"]} '
                f'calibration scores at alpha {status["alpha"]:g})')
    return 'implausible: not used (no threshold)'


def _flag_lines(result, label_kind: str) -> List[tuple]:
    """The colour key, what the ERE flag rests on and what the
    configuration flag rests on, as ``(text, colour)`` lines."""
    status = getattr(result, 'flag_status', None)
    config = getattr(result, 'configuration_status', None)
    judged = any(lm.get('flagged') is not None for lm in result.landmarks)
    key = (f'label = {label_kind} [why flagged]   orange: flagged   '
           'green: ok' if judged and (status is not None or config is not None
                                     or result.flag_threshold_mm is not None)
           else f'label = {label_kind}   cyan: not flagged (flags off)')
    if not result.calibrated:
        key += '   UNCALIBRATED'
    lines = [(key, _WHITE)]
    if status is not None:
        basis = flag_legend(status)
        if status['status'] != 'used':  # beside a configuration flag
            basis = 'ERE ' + basis
        if status['status'] == 'used' and not status['applied']:
            basis += '; not applied: no spacing'
        lines.append((basis, _WHITE if status['applied'] and judged
                      else UNKNOWN_BGR))
    if config is not None:
        lines.append((_configuration_legend(config), _WHITE
                      if config['status'] == 'used' else UNKNOWN_BGR))
    return lines


def _wrap(style: CanvasStyle, parts: List[str], sep: str,
          width: float) -> List[str]:
    """``parts`` joined by ``sep`` into lines whose boxes fit ``width``."""
    lines, line = [], ''
    for part in parts:
        trial = f'{line}{sep}{part}' if line else part
        if line and style.text_box_size(trial)[0] > width:
            lines.append(line)
            line = part
        else:
            line = trial
    return lines + [line] if line else lines


def wrap_line(style: CanvasStyle, text: str, width: float) -> List[str]:
    """``text`` cut into lines whose boxes fit ``width`` pixels: between
    its entries (parts separated by three spaces, e.g. ``1 sella   2
    nasion``) where it can, inside an entry (at a space) only when the
    entry alone is too wide; a single word wider than that stays whole."""
    lines = []
    for part in _wrap(style, text.split(_ENTRY_SEP), _ENTRY_SEP, width):
        if style.text_box_size(part)[0] > width:
            lines.extend(_wrap(style, part.split(' '), ' ', width))
        else:
            lines.append(part)
    return lines


def legend_lines(result, label_kind: str, region_level, invalid: Sequence[str],
                 number_names: Sequence[Tuple[int, str]], unplaced: Sequence[
                     str], style: CanvasStyle, width: float,
                 show_note: Optional[str] = None) -> List[tuple]:
    """Every ``(text, colour)`` line of the band, wrapped to ``width``:
    the numbers' names first (when labels carry numbers), then the key and
    what the flags rest on, the region line (blank without regions) and
    the invalid landmarks, padded to :data:`LEGEND_LINES` lines (so an
    image's overlays line up whether or not regions are drawn), then the
    labels no room was found for.

    Args:
        result (LandmarkResult): The result drawn.
        label_kind (str): What labels say, e.g. ``'name: ERE in mm'``.
        region_level (float | None): The coverage of the outlines drawn.
        invalid (Sequence[str]): Names of the landmarks without an answer.
        number_names (Sequence[tuple]): ``(number, name)`` of the labelled
            landmarks when labels carry numbers; else empty.
        unplaced (Sequence[str]): Labels no room was found for.
        style (CanvasStyle): The canvas style (text sizes).
        width (float): The band's width, pixels.
        show_note (str, optional): What the overlay leaves out, under the
            key.
    """
    status = _flag_lines(result, label_kind)
    if show_note:
        status.insert(1, (show_note, _WHITE))
    region = _REGION_LINE.format(100 * (region_level or 0.9))
    if region_level is not None:
        status.append((region, _WHITE))
    if invalid:
        status.append(('INVALID (no answer, not drawn): ' +
                       ', '.join(invalid), FLAGGED_BGR))
    names = [(_ENTRY_SEP.join(f'{n} {name}' for n, name in number_names),
              _WHITE)] if number_names else []
    rest = [('no room for the labels of: ' + ', '.join(unplaced),
             UNKNOWN_BGR)] if unplaced else []

    def wrapped(lines):
        return [(part, colour) for text, colour in lines
                for part in wrap_line(style, text, width - 16)]

    status = wrapped(status)
    if region_level is None:  # its lines kept blank: the band's height
        # stays whether regions are drawn
        status += [('', _WHITE)] * len(wrapped([(region, _WHITE)]))
    status += [('', _WHITE)] * (LEGEND_LINES - len(status))
    return wrapped(names) + status + wrapped(rest)


def legend_band_height(style: CanvasStyle, num_lines: int) -> int:
    """Pixels of a band holding ``num_lines`` lines (at least
    :data:`LEGEND_LINES`)."""
    return max(LEGEND_LINES, num_lines) * style.line_step() + 8


def draw_legend_band(canvas: np.ndarray, style: CanvasStyle,
                     lines: Sequence[tuple]) -> np.ndarray:
    """The canvas with a black band under it holding ``lines``."""
    band = np.zeros((legend_band_height(style, len(lines)), canvas.shape[1],
                     3), canvas.dtype)
    step = style.line_step()
    for i, (line, colour) in enumerate(lines):
        outlined_text(band, style, line, (8, 4 + i * step), colour)
    return np.concatenate([canvas, band], axis=0)
