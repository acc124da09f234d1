# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""``tools/infer.py --format labelme`` on X-rays labelme cannot show (a
DICOM, a MetaImage) beside an 8-bit PNG: the 8-bit review copies it writes
beside the labelme files, and the reviewed folder converted back against
the originals, each with its header's spacing (an untrained tiny model:
only where the points are matters, not how good they are)."""
import base64
import json
import os
import os.path as osp
import shutil

import numpy as np
import pytest

from mmchh.apis import read_xray
from mmchh.apis.labelme_export import LABELME_FOLDER
from mmchh.datasets.image_reader import read_image
from mmchh.testing import run_tool_in_process
from mmchh.testing.untrained_tiny_model import write_untrained_tiny_model
from test_datasets.test_converters.landmark_files import (make_pixels,
                                                          write_dicom,
                                                          write_mha)

pytestmark = pytest.mark.filterwarnings('ignore:.*12-bit data')

#: The inputs, with the spacing (x, y) in their headers.
SPACINGS = {'a.dcm': [0.25, 0.5], 'b.mha': [0.3, 0.3], 'c.png': None}


@pytest.fixture(scope='module')
def predicted(tmp_path_factory):
    """The tiny model, the X-rays and infer's output folder (in another
    tree), with the tool's stdout."""
    root = tmp_path_factory.mktemp('review_copies')
    cfg, ckpt = write_untrained_tiny_model(str(root / 'model'))
    xrays = root / 'xrays'
    xrays.mkdir()
    # DICOM stores (row, column) spacing: (y, x)
    write_dicom(str(xrays / 'a.dcm'), make_pixels(1, np.uint16),
                PixelSpacing=[0.5, 0.25])
    write_mha(str(xrays / 'b.mha'), make_pixels(2, np.uint16), (0.3, 0.3))
    import cv2
    cv2.imwrite(str(xrays / 'c.png'), make_pixels(3))
    out = root / 'elsewhere' / 'preds'
    run = run_tool_in_process('infer', [
        str(xrays), '--config', cfg, '--checkpoint', ckpt, '--out-dir',
        str(out), '--no-overlay', '--no-progress', '--format', 'labelme'
    ])
    assert run.returncode == 0, run.stderr
    with open(out / 'landmarks.json', encoding='utf-8') as f:
        doc = json.load(f)
    return dict(root=root, cfg=cfg, ckpt=ckpt, xrays=str(xrays),
                out=str(out), doc=doc, stdout=run.stdout,
                labelme=str(out / LABELME_FOLDER))


def test_copies_of_dicom_and_metaimage_only(predicted):
    from PIL import Image
    labelme = predicted['labelme']
    assert sorted(os.listdir(labelme)) == [
        'a.json', 'a.png', 'b.json', 'b.png', 'c.json']
    for res in predicted['doc']['results']:
        source = res['path']
        name = osp.basename(source)
        with open(osp.join(predicted['out'], res['labelme_file']),
                  encoding='utf-8') as f:
            doc = json.load(f)
        assert doc['imageData'] is None
        assert doc['mmchh']['source_image'] == osp.relpath(source, labelme)
        image = osp.join(labelme, doc['imagePath'])
        if name == 'c.png':  # 8-bit PNG: labelme opens the source itself
            assert osp.samefile(image, source)
            assert doc['mmchh']['review_copy'] is None
            continue
        assert doc['imagePath'] == name[0] + '.png'
        with Image.open(image) as pil:  # as labelme opens it
            assert pil.mode == 'L' and pil.size == read_image(source).size
            grey = np.asarray(pil)
        np.testing.assert_array_equal(grey, read_xray(source).grey)
        assert [doc['imageWidth'], doc['imageHeight']] == res['image_size']
    assert ('labelme: 2 8-bit PNG review copies beside them'
            in predicted['stdout'])


def test_reviewed_copies_convert_back_against_the_originals(predicted):
    """A clinician moves a point of the DICOM's file and saves it in
    labelme (which embeds the copy it showed, ``imageData``); the folder
    converts against the original X-rays: paired by stem, each spacing its
    header's, the moved point where it was put, the others exact."""
    reviewed = str(predicted['root'] / 'reviewed')
    shutil.copytree(predicted['labelme'], reviewed)
    path = osp.join(reviewed, 'a.json')
    with open(path, encoding='utf-8') as f:
        doc = json.load(f)
    moved = [7.75, 20.125]
    doc['shapes'][1]['points'] = [moved]
    with open(osp.join(reviewed, doc['imagePath']), 'rb') as f:
        doc['imageData'] = base64.b64encode(f.read()).decode('ascii')
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(doc, f, indent=2)
    names = [s['label'] for s in doc['shapes']]
    assert len(names) == len(predicted['doc']['results'][0]['landmarks'])
    conversion = str(predicted['root'] / 'reviewed_coco')
    run = run_tool_in_process('dataset_converters/convert_landmarks', [
        conversion, '--images', predicted['xrays'], '--keypoints', *names,
        '--labelme', f'reviewed={reviewed}', '--test-fraction', '1'
    ])
    assert run.returncode == 0, run.stderr
    assert 'faults: 0' in run.stdout
    with open(osp.join(conversion, 'test.json'), encoding='utf-8') as f:
        coco = json.load(f)
    images = {im['id']: im for im in coco['images']}
    assert {im['original_file']: im['spacing']
            for im in images.values()} == SPACINGS
    predictions = {
        osp.basename(res['path']): [[lm['x'], lm['y']]
                                    for lm in res['landmarks']]
        for res in predicted['doc']['results']
    }
    predictions['a.dcm'][1] = moved
    for ann in coco['annotations']:
        name = images[ann['image_id']]['original_file']
        got = np.asarray(ann['keypoints_reviewed']).reshape(-1, 3)
        np.testing.assert_array_equal(got[:, :2], predictions[name])


def test_overwrite_replaces_copies_and_keeps_other_files(predicted):
    """A second run with --overwrite replaces the first run's review
    copies; a PNG somebody else put in the labelme folder is kept."""
    out = str(predicted['root'] / 'rerun')
    shutil.copytree(predicted['out'], out)
    theirs = osp.join(out, LABELME_FOLDER, 'notes.png')
    shutil.copyfile(osp.join(predicted['xrays'], 'c.png'), theirs)
    with open(theirs, 'rb') as f:
        before = f.read()
    run = run_tool_in_process('infer', [
        predicted['xrays'], '--config', predicted['cfg'], '--checkpoint',
        predicted['ckpt'], '--out-dir', out, '--no-overlay',
        '--no-progress', '--format', 'labelme', '--overwrite'
    ])
    assert run.returncode == 0, run.stderr
    assert sorted(os.listdir(osp.join(out, LABELME_FOLDER))) == [
        'a.json', 'a.png', 'b.json', 'b.png', 'c.json', 'notes.png']
    with open(theirs, 'rb') as f:
        assert f.read() == before
