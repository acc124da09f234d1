# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The review round trip: ``tools/infer.py --format labelme`` on a small
trained model, then the folder back through ``convert_landmarks`` as an
annotator, unedited and with a clinician's edit."""
import contextlib
import io
import json
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest

from mmchh.apis import init_landmark_model, predict_landmarks
from mmchh.apis.labelme_export import LABELME_FOLDER
from mmchh.datasets.converters import convert_landmarks
from mmchh.testing import load_tool

NUM_IMAGES = 4


@pytest.fixture(scope='module')
def review(ceph_coco_small, calibrated_small_demo, tmp_path_factory):
    """The session's calibrated model, NUM_IMAGES X-rays in their own
    folder (another size than the model's input, so the predicted points
    are long floats), and the CLI's outputs (with --format labelme) in
    another tree."""
    cfg, ckpt = calibrated_small_demo['cfg'], calibrated_small_demo['ckpt']
    xrays = tmp_path_factory.mktemp('clinic') / 'xrays'
    xrays.mkdir()
    source = osp.join(ceph_coco_small, 'images')
    for name in sorted(os.listdir(source))[:NUM_IMAGES]:
        grey = cv2.imread(osp.join(source, name), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(xrays / name), cv2.resize(grey, (50, 109)))
    # a spacing that puts the flag threshold amid this model's EREs, so
    # some landmarks are flagged and some are not
    model = init_landmark_model(cfg, ckpt)
    files = sorted(str(p) for p in xrays.iterdir())
    ere_px = [lm['ere_px'] for r in predict_landmarks(model, files)
              for lm in r.landmarks]
    spacing = float(model.head.flag_threshold) / float(np.median(ere_px))
    out = tmp_path_factory.mktemp('elsewhere') / 'preds'
    return dict(cfg=cfg, ckpt=ckpt, xrays=str(xrays), out=str(out),
                spacing=spacing, names=model.dataset_meta['keypoint_id2name'],
                work=str(tmp_path_factory.mktemp('conversions')))


def _infer(review, out, *extra):
    return load_tool('infer').main([
        review['xrays'], '--config', review['cfg'], '--checkpoint',
        review['ckpt'], '--out-dir', out, '--spacing',
        repr(review['spacing']), '--no-overlay', '--no-progress', *extra
    ])


@pytest.fixture(scope='module')
def predicted(review):
    """Runs the CLI once; returns its landmarks.json and stdout."""
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = _infer(review, review['out'], '--format', 'labelme')
    assert code == 0
    with open(osp.join(review['out'], 'landmarks.json')) as f:
        doc = json.load(f)
    return dict(doc=doc, stdout=stdout.getvalue())


def _keypoint_names(review):
    return [review['names'][k] for k in sorted(review['names'])]


def _converted_points(review, labelme_dir, name):
    """original file name -> {'keypoints': (K, 3), 'keypoints_reviewed'}
    over every split of a conversion of ``labelme_dir``."""
    out = osp.join(review['work'], name)
    convert_landmarks(out, review['xrays'], _keypoint_names(review),
                      labelme=dict(reviewed=labelme_dir), test_fraction=0,
                      num_val=1, num_calib=1, progress=False)
    points = {}
    for split in ('train', 'val', 'calib', 'test'):
        path = osp.join(out, f'{split}.json')
        if not osp.isfile(path):
            continue
        with open(path) as f:
            coco = json.load(f)
        files = {im['id']: im['original_file'] for im in coco['images']}
        for ann in coco['annotations']:
            points[files[ann['image_id']]] = {
                key: np.asarray(ann[key]).reshape(-1, 3)
                for key in ('keypoints', 'keypoints_reviewed')
            }
    return points


def test_labelme_files_mark_flags_and_find_their_images(review, predicted):
    doc = predicted['doc']
    assert doc['complete'] and len(doc['results']) == NUM_IMAGES
    flags = []
    for res in doc['results']:
        stem = osp.splitext(osp.basename(res['path']))[0]
        assert res['labelme_file'] == f'{LABELME_FOLDER}/{stem}.json'
        path = osp.join(review['out'], res['labelme_file'])
        with open(path) as f:
            labelme = json.load(f)
        # the output folder is in another tree: imagePath still finds it
        image = osp.join(osp.dirname(path), labelme['imagePath'])
        assert not osp.isabs(labelme['imagePath'])
        assert osp.samefile(image, res['path'])
        assert [labelme['imageWidth'], labelme['imageHeight']] == \
            res['image_size']
        assert [s['label'] for s in labelme['shapes']] == [
            lm['name'] for lm in res['landmarks']]
        for shape, lm in zip(labelme['shapes'], res['landmarks']):
            assert shape['points'] == [[lm['x'], lm['y']]]
            assert shape['flags'] == dict(flagged=lm['flagged'])
            assert f'ERE {lm["ere_mm"]:.3f} mm' in shape['description']
            flags.append(lm['flagged'])
    assert any(flags) and not all(flags)
    assert (f'labelme: {NUM_IMAGES} review file(s) in '
            f'{osp.join(review["out"], LABELME_FOLDER)}, {sum(flags)} '
            'flagged landmark(s) marked') in predicted['stdout']


def test_round_trip_exact_and_an_edit_arrives(review, predicted, tmp_path):
    predictions = {
        osp.basename(res['path']): np.array(
            [[lm['x'], lm['y']] for lm in res['landmarks']])
        for res in predicted['doc']['results']
    }
    folder = osp.join(review['out'], LABELME_FOLDER)
    unedited = _converted_points(review, folder, 'unedited')
    assert sorted(unedited) == sorted(predictions)
    every = np.concatenate(list(predictions.values()))
    assert (every != np.round(every, 6)).any()  # rounding would show
    for name, xy in predictions.items():
        for key in ('keypoints', 'keypoints_reviewed'):
            got = unedited[name][key]
            assert (got[:, 2] == 2).all()
            np.testing.assert_array_equal(got[:, :2], xy)  # float equality

    # a clinician moves one landmark and saves (labelme's own indent)
    edited = str(tmp_path / 'reviewed')
    shutil.copytree(folder, edited)
    name = sorted(predictions)[1]
    path = osp.join(edited, osp.splitext(name)[0] + '.json')
    with open(path) as f:
        labelme = json.load(f)
    moved = [12.75, 33.125]
    assert labelme['shapes'][2]['points'] != [moved]
    labelme['shapes'][2]['points'] = [moved]
    with open(path, 'w') as f:
        json.dump(labelme, f, indent=2, ensure_ascii=False)
    after = _converted_points(review, edited, 'edited')
    expected = predictions[name].copy()
    expected[2] = moved
    np.testing.assert_array_equal(after[name]['keypoints_reviewed'][:, :2],
                                  expected)
    for other in set(predictions) - {name}:
        np.testing.assert_array_equal(
            after[other]['keypoints_reviewed'][:, :2], predictions[other])


def test_earlier_labelme_files_count_as_outputs(review, predicted, tmp_path):
    out = str(tmp_path / 'again')
    shutil.copytree(osp.join(review['out'], LABELME_FOLDER),
                    osp.join(out, LABELME_FOLDER))
    # refused: the folder holds an earlier run's labelme files
    with pytest.raises(SystemExit, match='earlier run.*labelme'):
        _infer(review, out)
    # --overwrite replaces the folder; this run writes no labelme files
    assert _infer(review, out, '--overwrite') == 0
    assert not osp.exists(osp.join(out, LABELME_FOLDER))
    assert osp.isfile(osp.join(out, 'landmarks.json'))


def test_json_and_csv_carry_the_conformal_regions(review, predicted):
    """The model's calibration fitted conformal regions: every landmark of
    the JSON has them per level (outline area = reported area), the CSV
    the first level's, and the labelme files only points (above)."""
    import csv

    from mmchh.codecs.utils import ring_area
    doc = predicted['doc']
    with open(osp.join(review['out'], 'landmarks.csv')) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == NUM_IMAGES * len(doc['results'][0]['landmarks'])
    spacing = review['spacing']
    for i, res in enumerate(doc['results']):
        for lm in res['landmarks']:
            regions = lm['regions']
            assert regions and all(0 < g['level'] < 1 for g in regions)
            for g in regions:
                area = sum(ring_area(np.asarray(r)) for r in g['outline'])
                assert area == pytest.approx(g['area_px2'], rel=1e-9)
                assert g['area_mm2'] == pytest.approx(
                    g['area_px2'] * spacing**2, rel=1e-5)
                assert len(g['outline_holes']) == len(g['outline'])
            row = rows[i * len(res['landmarks']) + lm['index']]
            assert float(row['region_level']) == regions[0]['level']
            assert float(row['region_area_px2']) == regions[0]['area_px2']
            assert float(row['region_area_mm2']) == regions[0]['area_mm2']
            assert json.loads(row['region_outline']) == regions[0]['outline']
