# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""User inference: the Python API, the overlays and tools/infer.py, on one
tiny model trained and calibrated in-test with the demo config."""
import csv
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import warnings

import cv2
import numpy as np
import pytest
import torch

import mmchh  # noqa: F401
from mmchh.apis import (ImageLoadError, LandmarkResult, init_landmark_model,
                        load_xray, predict_landmarks)
from mmchh.codecs.utils import conformal_region_masks, ring_area
from mmchh.datasets.ceph_meta import CEPH_LANDMARK_NAMES
from mmchh.testing import load_tool
from mmchh.visualization import draw_overlay

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SPACING = 0.6


@pytest.fixture(scope='module')
def trained(ceph_coco_small, calibrated_small_demo):
    """The session's calibrated demo model (2 epochs + the config's
    TemperatureScalingHook), loaded once for the module."""
    work = calibrated_small_demo['work']
    cfg_path, ckpt = calibrated_small_demo['cfg'], calibrated_small_demo[
        'ckpt']
    with warnings.catch_warnings():
        warnings.simplefilter('error', UserWarning)  # calibrated: no warning
        model = init_landmark_model(cfg_path, ckpt, device='cpu')
    images = sorted(
        osp.join(ceph_coco_small, 'images', n)
        for n in os.listdir(osp.join(ceph_coco_small, 'images')))
    return dict(work=work, cfg=cfg_path, ckpt=ckpt, model=model,
                images=images)


def test_api_results_complete_and_flags_consistent(trained):
    model, images = trained['model'], trained['images'][:2]
    results = predict_landmarks(model, images, spacing=SPACING,
                                return_heatmaps=True)
    assert len(results) == 2
    thr = float(model.head.flag_threshold)
    for path, r in zip(images, results):
        assert isinstance(r, LandmarkResult)
        assert r.path == path and r.calibrated
        assert r.spacing == (SPACING, SPACING)
        assert r.flag_threshold_mm == pytest.approx(thr)
        h, w = cv2.imread(path, cv2.IMREAD_UNCHANGED).shape[:2]
        assert r.image_size == (w, h)
        assert [lm['name'] for lm in r.landmarks] == list(CEPH_LANDMARK_NAMES)
        assert r.heatmaps.shape == (19, ) + (r.input_size[1],
                                             r.input_size[0])
        assert r.heatmaps.dtype == np.float32
        np.testing.assert_allclose(r.heatmaps.sum((1, 2)), 1, rtol=1e-4)
        for lm in r.landmarks:
            assert 0 <= lm['x'] < w and 0 <= lm['y'] < h
            assert lm['x_mm'] == pytest.approx(lm['x'] * SPACING)
            assert lm['y_mm'] == pytest.approx(lm['y'] * SPACING)
            assert 0 < lm['probability'] <= 1
            assert lm['ere_px'] > 0 and lm['ere_mm'] > 0
            # isotropic spacing: mm = px * spacing (up to float32)
            assert lm['ere_mm'] == pytest.approx(lm['ere_px'] * SPACING,
                                                 rel=1e-4)
            assert lm['flagged'] == (lm['ere_mm'] > thr)
            # the mode of the returned map is the predicted point
            k = lm['index']
            v, u = np.unravel_index(r.heatmaps[k].argmax(),
                                    r.heatmaps[k].shape)
            np.testing.assert_allclose(r.heatmap_to_image([u, v]),
                                       [lm['x'], lm['y']], atol=1e-4)
            assert r.heatmaps[k].max() == pytest.approx(lm['probability'])
    # without spacing: pixels only, no flags
    r = predict_landmarks(model, images[0])[0]
    assert r.spacing is None and r.heatmaps is None
    assert all(lm['ere_mm'] is None and lm['x_mm'] is None
               and lm['flagged'] is None for lm in r.landmarks)
    assert [lm['x'] for lm in r.landmarks] == [
        lm['x'] for lm in results[0].landmarks
    ]


def test_16bit_and_rgb_copies_give_identical_landmarks(trained, tmp_path):
    model, src = trained['model'], trained['images'][0]
    grey = cv2.imread(src, cv2.IMREAD_UNCHANGED)
    assert grey.dtype == np.uint8 and grey.ndim == 2
    p16 = str(tmp_path / 'sixteen.png')
    cv2.imwrite(p16, grey.astype(np.uint16) * 257)
    prgb = str(tmp_path / 'colour.png')
    cv2.imwrite(prgb, np.repeat(grey[..., None], 3, axis=2))
    assert cv2.imread(p16, cv2.IMREAD_UNCHANGED).dtype == np.uint16
    np.testing.assert_array_equal(load_xray(p16), grey)
    np.testing.assert_array_equal(load_xray(prgb), grey)
    rgba = np.concatenate(
        [np.repeat(grey[..., None], 3, 2),
         np.full_like(grey[..., None], 7)], 2)
    np.testing.assert_array_equal(load_xray(rgba), grey)
    rs = predict_landmarks(model, [src, p16, prgb], batch_size=1)
    ref = [(lm['x'], lm['y']) for lm in rs[0].landmarks]
    for r in rs[1:]:
        assert [(lm['x'], lm['y']) for lm in r.landmarks] == ref
        assert [lm['probability'] for lm in r.landmarks] == pytest.approx(
            [lm['probability'] for lm in rs[0].landmarks])


def test_other_size_maps_back_inside_image(trained, tmp_path):
    model = trained['model']
    grey = load_xray(trained['images'][0])
    big = cv2.resize(grey, (150, 130))  # other size and aspect ratio
    r = predict_landmarks(model, big, spacing=(0.3, 0.4))[0]
    assert r.path is None and r.image_size == (150, 130)
    for lm in r.landmarks:
        assert 0 <= lm['x'] < 150 and 0 <= lm['y'] < 130
        assert lm['y_mm'] == pytest.approx(lm['y'] * 0.4)
    # a colour (non-grey) image is converted, not rejected
    colour = cv2.applyColorMap(big, cv2.COLORMAP_JET)
    assert len(predict_landmarks(model, colour)[0].landmarks) == 19


def test_uncalibrated_checkpoint_warns_and_predicts(trained, tmp_path):
    state = torch.load(trained['ckpt'], map_location='cpu')['state_dict']
    state['head.log_temperature'].zero_()
    del state['head.flag_threshold']  # as in an export without it
    ckpt = str(tmp_path / 'uncalibrated.pth')
    torch.save(dict(state_dict=state), ckpt)
    with pytest.warns(UserWarning, match='uncalibrated.*tools/calibrate.py'):
        model = init_landmark_model(trained['cfg'], ckpt)
    r = predict_landmarks(model, trained['images'][0], spacing=SPACING)[0]
    assert not r.calibrated and r.flag_threshold_mm is None
    assert all(lm['flagged'] is None and lm['ere_mm'] > 0
               for lm in r.landmarks)


def test_landmark_count_mismatch_is_a_clear_error(trained, tmp_path):
    from mmengine.config import Config
    cfg = Config.fromfile(trained['cfg'])
    cfg.model.head.out_channels = 5
    cfg_path = str(tmp_path / 'five.py')
    cfg.dump(cfg_path)
    with pytest.raises(ValueError) as info:
        init_landmark_model(cfg_path, trained['ckpt'])
    msg = str(info.value)
    assert '19' in msg and '5' in msg
    assert trained['ckpt'] in msg and cfg_path in msg


def test_bad_inputs_raise_image_load_error(tmp_path):
    bad = tmp_path / 'broken.png'
    bad.write_bytes(b'\x89PNG\r\n\x1a\n' + b'\0' * 40)
    txt = tmp_path / 'notes.txt'
    txt.write_text('not an image')
    for p in (bad, txt, tmp_path / 'missing.png'):
        with pytest.raises(ImageLoadError) as info:
            load_xray(str(p))
        assert info.value.path == str(p) and info.value.reason
        assert isinstance(info.value, ValueError)


def test_overlay_written(trained, tmp_path):
    model, src = trained['model'], trained['images'][0]
    r = predict_landmarks(model, src, spacing=SPACING,
                          return_heatmaps=True)[0]
    out = str(tmp_path / 'ov' / 'x.png')
    canvas = draw_overlay(load_xray(src), r, out)
    img = cv2.imread(out)
    assert img is not None and img.shape == canvas.shape
    assert os.listdir(osp.dirname(out)) == ['x.png']  # no temp left over
    # colour was drawn on the grey X-ray
    assert (img[..., 0] != img[..., 2]).any()


def test_cli_folder_with_bad_files(trained, tmp_path):
    folder = tmp_path / 'in'
    folder.mkdir()
    good = trained['images'][:2]
    for p in good:
        shutil.copy(p, folder / osp.basename(p))
    (folder / 'corrupt.png').write_bytes(b'\x89PNG\r\n\x1a\n garbage')
    (folder / 'readme.txt').write_text('hello')
    out = tmp_path / 'out'
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'infer.py'), str(folder),
         '--config', trained['cfg'], '--checkpoint', trained['ckpt'],
         '--out-dir', str(out), '--spacing', str(SPACING)],
        capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'corrupt.png' in proc.stderr and 'readme.txt' in proc.stderr

    doc = json.load(open(out / 'landmarks.json'))
    assert {osp.basename(e['path']) for e in doc['errors']} == {
        'corrupt.png', 'readme.txt'}
    assert all(e['reason'] for e in doc['errors'])
    assert doc['calibrated'] and doc['flag_threshold_mm'] > 0
    names = [osp.basename(r['path']) for r in doc['results']]
    assert names == [osp.basename(p) for p in good]
    for n in names:
        ov = out / 'overlays' / (osp.splitext(n)[0] + '.png')
        assert ov.stat().st_size > 0 and cv2.imread(str(ov)) is not None

    rows = list(csv.DictReader(open(out / 'landmarks.csv')))
    assert len(rows) == 2 * 19
    api = predict_landmarks(trained['model'],
                            [str(folder / n) for n in names],
                            spacing=SPACING)
    for i, (res, a) in enumerate(zip(doc['results'], api)):
        assert res['image_size'] == list(a.image_size)
        for lm, alm in zip(res['landmarks'], a.landmarks):
            row = rows[i * 19 + lm['index']]
            assert osp.basename(row['image']) == names[i]
            assert row['landmark'] == lm['name'] == alm['name']
            assert float(row['x']) == lm['x'] == alm['x']
            assert float(row['y']) == lm['y'] == alm['y']
            assert float(row['x_mm']) == pytest.approx(alm['x_mm'])
            for key in ('probability', 'ere_mm', 'ere_px'):
                assert float(row[key]) == lm[key]
                assert lm[key] == pytest.approx(alm[key], rel=1e-4)
            assert row['flagged'] == str(lm['flagged'])
            assert lm['flagged'] == (lm['ere_mm'] > doc['flag_threshold_mm'])


def test_cli_only_bad_files_exits_1(trained, tmp_path, capsys):
    folder = tmp_path / 'bad'
    folder.mkdir()
    (folder / 'a.txt').write_text('x')
    out = tmp_path / 'out'
    tool = load_tool('infer')
    code = tool.main([
        str(folder), '--config', trained['cfg'], '--checkpoint',
        trained['ckpt'], '--out-dir', str(out), '--no-overlay'
    ])
    assert code == 1
    err = capsys.readouterr().err
    assert 'a.txt' in err and 'no image could be predicted' in err
    doc = json.load(open(out / 'landmarks.json'))
    assert doc['results'] == [] and len(doc['errors']) == 1


# --------------------------------------------------------------------------
# conformal regions: outlines in image pixels
# --------------------------------------------------------------------------
def _inside(rings, pts):
    """Even-odd crossing test of (N, 2) points against every ring."""
    px, py = pts[:, :1], pts[:, 1:]
    count = np.zeros(len(pts), int)
    for ring in rings:
        a = np.asarray(ring, np.float64)
        b = np.roll(a, -1, axis=0)
        ay, by = a[None, :, 1], b[None, :, 1]
        cross = (ay > py) != (by > py)
        dy = np.where(by == ay, 1.0, by - ay)
        x = a[None, :, 0] + (py - ay) * (b[None, :, 0] - a[None, :, 0]) / dy
        count += (cross & (x > px)).sum(1)
    return count % 2 == 1


def _outline_area(region):
    return sum(ring_area(np.asarray(r)) for r in region['outline'])


def test_regions_outline_the_heads_regions_in_image_pixels(trained):
    model = trained['model']
    head = model.head
    assert head.has_conformal_regions
    # another size and aspect than the model input: image px != input px
    big = cv2.resize(load_xray(trained['images'][0]), (150, 130))
    r = predict_landmarks(model, big, spacing=(0.3, 0.4),
                          return_heatmaps=True)[0]
    h, w = r.heatmaps.shape[1:]
    vs, us = np.mgrid[0:h, 0:w]
    centres = r.heatmap_to_image(np.stack([us.ravel(), vs.ravel()], 1))
    per_pixel = float(
        np.prod(r.frame.heatmap_scale * r.frame.input_pixel_size()))
    levels = head.conformal_level.tolist()
    for lm in r.landmarks:
        k = lm['index']
        assert [g['level'] for g in lm['regions']] == pytest.approx(levels)
        for lv, g in enumerate(lm['regions']):
            # the outline encloses exactly the area the head reports
            assert _outline_area(g) == pytest.approx(g['area_px2'],
                                                     rel=1e-9)
            assert g['area_mm2'] == pytest.approx(g['area_px2'] * 0.3 * 0.4,
                                                  rel=1e-5)
            assert g['disc_radius_px'] == pytest.approx(
                float(head.conformal_disc_radius[lv, k]))
            assert g['outline_holes'] == [
                ring_area(np.asarray(ring)) < 0 for ring in g['outline']]
            # the region's pixels, from the returned maps: their centres
            # (image pixels) are inside the outline, the others outside
            mask = conformal_region_masks(
                torch.from_numpy(r.heatmaps[k]),
                float(head.conformal_threshold[lv, k]),
                head.conformal_score).numpy()
            assert mask.sum() * per_pixel == pytest.approx(g['area_px2'])
            np.testing.assert_array_equal(
                _inside(g['outline'], centres), mask.ravel())
    doc = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert doc['landmarks'][0]['regions'][0]['outline'] == \
        r.landmarks[0]['regions'][0]['outline']


def test_regions_none_for_invalid_landmark_and_model_without_regions(
        trained):
    model, src = trained['model'], trained['images'][0]
    head = model.head
    bias = head.final_layer.bias.detach().clone()
    radius = head.conformal_disc_radius.clone()
    try:
        with torch.no_grad():
            head.final_layer.bias[2] = float('inf')
        # a level the calibration split was too small to bound the disc at
        head.conformal_disc_radius[0, 0] = float(np.finfo(np.float32).max)
        with pytest.warns(UserWarning, match='no valid heatmap'):
            r = predict_landmarks(model, src)[0]
    finally:
        with torch.no_grad():
            head.final_layer.bias.copy_(bias)
        head.conformal_disc_radius.copy_(radius)
    assert r.landmarks[2]['valid'] is False
    assert r.landmarks[2]['regions'] is None
    assert r.landmarks[0]['regions'][0]['disc_radius_px'] == float('inf')
    doc = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert doc['landmarks'][0]['regions'][0]['disc_radius_px'] is None
    assert doc['landmarks'][2]['regions'] is None
    others = [lm for lm in r.landmarks if lm['index'] != 2]
    # no spacing: areas in image px² only
    assert all(lm['regions'][0]['area_px2'] > 0
               and lm['regions'][0]['area_mm2'] is None for lm in others)
    threshold = head.conformal_threshold.clone()
    try:
        head.conformal_threshold.fill_(float('nan'))  # never fitted
        r = predict_landmarks(model, src)[0]
    finally:
        head.conformal_threshold.copy_(threshold)
    assert all(lm['regions'] is None for lm in r.landmarks)


def test_overlay_draws_region_outlines(trained, tmp_path):
    model, src = trained['model'], trained['images'][0]
    r = predict_landmarks(model, src, spacing=SPACING)[0]
    grey = load_xray(src)
    with_regions = draw_overlay(grey, r, str(tmp_path / 'regions.png'))
    for lm in r.landmarks:
        lm['regions'] = None
    bare = draw_overlay(grey, r, str(tmp_path / 'bare.png'))
    changed = (with_regions != bare).any(-1)
    assert changed.any()
    # only along the outlines: every changed canvas pixel is within a
    # line width of an outline edge (first level) ...
    zoom = bare.shape[1] / grey.shape[1]
    for lm in predict_landmarks(model, src, spacing=SPACING)[0].landmarks:
        for ring in lm['regions'][0]['outline']:
            pts = (np.asarray(ring) * zoom + 0.5 * (zoom - 1))
            cv2.polylines(changed.view(np.uint8), [np.round(pts).astype(
                np.int32).reshape(-1, 1, 2)], True, 0, 3)
    # ... and for the legend's line saying what they are, at the bottom
    ys, _ = np.nonzero(changed)
    assert len(ys) and ys.min() > 0.9 * changed.shape[0]


def test_test_tool_show_dir_overlays_draw_regions(trained, tmp_path,
                                                  monkeypatch):
    """tools/test.py --show-dir builds its overlays through the API's
    landmark_result: with the regions of the calibrated checkpoint."""
    import mmchh.visualization as vis
    drawn, real = [], vis.draw_overlay

    def spy(grey, result, out, *args, **kwargs):
        drawn.append(result)
        return real(grey, result, out, *args, **kwargs)

    monkeypatch.setattr(vis, 'draw_overlay', spy)
    show = tmp_path / 'show'
    assert load_tool('test').main([
        trained['cfg'], trained['ckpt'], '--work-dir',
        str(tmp_path / 'w'), '--show-dir', str(show)
    ]) == 0
    assert drawn and len(os.listdir(show)) == len(drawn)
    for r in drawn:
        for lm in r.landmarks:
            g = lm['regions'][0]
            assert g['outline'] and sum(
                ring_area(np.asarray(ring))
                for ring in g['outline']) == pytest.approx(g['area_px2'])
