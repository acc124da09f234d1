# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""What the tools' overlays draw: ``tools/infer.py --show flagged`` writes
overlays with the flagged landmarks only (pixels checked), ``--show all``
every one; ``tools/test.py --draw`` takes the same choices."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from mmchh.apis import init_landmark_model, predict_landmarks
from mmchh.testing import load_tool, run_tool_in_process
from mmchh.utils import cli
from mmchh.visualization.overlay import OVERLAY_SHOWS, overlay_layout
from mmchh.visualization.overlay_style import FLAGGED_BGR, OK_BGR

SIZE = (50, 109)  # (w, h) of the X-rays given to the tool


def is_colour(pixels, colour, tol=40):
    return np.abs(pixels.astype(int) - np.asarray(colour)).max(-1) <= tol


@pytest.fixture(scope='module')
def xrays(ceph_coco_small, calibrated_small_demo, tmp_path_factory):
    """Two X-rays and a spacing that puts the flag threshold amid the
    session model's EREs (some landmarks flagged, some not)."""
    folder = tmp_path_factory.mktemp('show') / 'xrays'
    folder.mkdir()
    source = osp.join(ceph_coco_small, 'images')
    for name in sorted(os.listdir(source))[:2]:
        grey = cv2.imread(osp.join(source, name), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(folder / name), cv2.resize(grey, SIZE))
    model = init_landmark_model(calibrated_small_demo['cfg'],
                                calibrated_small_demo['ckpt'])
    files = sorted(str(p) for p in folder.iterdir())
    ere = [lm['ere_px'] for r in predict_landmarks(model, files)
           for lm in r.landmarks]
    spacing = float(model.head.flag_threshold) / float(np.median(ere))
    return dict(folder=str(folder), spacing=spacing,
                ckpt=calibrated_small_demo['ckpt'])


def _infer(xrays, out, show):
    run = run_tool_in_process('infer', [
        xrays['folder'], '--checkpoint', xrays['ckpt'], '--out-dir', out,
        '--spacing', repr(xrays['spacing']), '--no-progress', '--show', show
    ])
    assert run.returncode == 0, run.stderr
    return {name: cv2.imread(osp.join(out, 'overlays', name))
            for name in sorted(os.listdir(osp.join(out, 'overlays')))}


def test_infer_show_flagged_draws_only_flagged(xrays, tmp_path):
    every = _infer(xrays, str(tmp_path / 'all'), 'all')
    only = _infer(xrays, str(tmp_path / 'flagged'), 'flagged')
    assert sorted(every) == sorted(only) and len(every) == 2
    # the X-ray part of the canvas (the legend band is under it)
    rows = overlay_layout((SIZE[1], SIZE[0]), _a_result()).image_size[1]
    green = sum(int(is_colour(c[:rows], OK_BGR).sum())
                for c in every.values())
    orange = [int(is_colour(c[:rows], FLAGGED_BGR).sum())
              for c in only.values()]
    assert green > 0 and sum(orange) > 0
    for canvas in only.values():
        assert not is_colour(canvas[:rows], OK_BGR).any()


def _a_result():
    """A result of the X-rays' size with no landmark (for the canvas
    geometry only)."""
    from mmchh.apis.landmark_result import LandmarkResult
    from mmchh.codecs.utils import HeatmapFrame
    frame = HeatmapFrame((8, 8), (16, 16), (SIZE[0] / 2, SIZE[1] / 2), SIZE,
                         None)
    return LandmarkResult(path=None, image_size=SIZE, landmarks=[],
                          calibrated=True, flag_threshold_mm=None,
                          frame=frame)


def test_test_tool_draw_option_takes_the_overlay_choices():
    assert cli.OVERLAY_SHOWS == OVERLAY_SHOWS
    tool = load_tool('test')
    for show in OVERLAY_SHOWS:
        args = tool.parse_args(['c.py', 'x.pth', '--show-dir', 'o', '--draw',
                                show])
        assert args.overlay_show == show and args.show is False
    assert tool.parse_args(['c.py', 'x.pth']).overlay_show == 'all'
    with pytest.raises(SystemExit):
        tool.parse_args(['c.py', 'x.pth', '--draw', 'everything'])
