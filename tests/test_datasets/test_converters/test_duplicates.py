"""Duplicates and patient groups in a conversion: hashes of the decoded
pixels, exact and near pairs, each cluster and group in one split, the
``duplicates`` policies and the report."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest

from mmchh.datasets.converters import ConversionError, convert_landmarks
from mmchh.datasets.converters.duplicates import (find_duplicates,
                                                  image_hashes, split_units)
from mmchh.datasets.image_reader import read_image
from mmchh.datasets.converters.splits import (LANDMARK_SPLITS,
                                              hold_out_splits, hold_out_test)

KEYPOINTS = ('sella', 'nasion')
W, H = 64, 80


def smooth(seed, dtype=np.uint8):
    """A smooth (H, W) image: blurred noise, different for every seed."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (H, W)).astype(np.float32),
                           (0, 0), 3)
    img = (img - img.min()) / (img.max() - img.min()) * 255
    return img.astype(np.uint8) if dtype == np.uint8 else \
        img.astype(np.uint16) * 257


def write_set(root, count=12, copies=True, points=None):
    """``count`` different images plus (``copies``) a TIFF of 003's pixels,
    a half-size copy of 005 and a JPEG of 007, with a CSV of their points
    (``points``: name -> (K, 2) to override one image's)."""
    images = root / 'images'
    images.mkdir(parents=True)
    sizes = {}
    for i in range(1, count + 1):
        cv2.imwrite(str(images / f'{i:03d}.png'), smooth(i))
        sizes[f'{i:03d}.png'] = (W, H)
    if copies:
        cv2.imwrite(str(images / 'c003.tif'), smooth(3))
        cv2.imwrite(str(images / 'c005.png'),
                    cv2.resize(smooth(5), (W // 2, H // 2),
                               interpolation=cv2.INTER_AREA))
        cv2.imwrite(str(images / 'c007.jpg'), smooth(7),
                    [cv2.IMWRITE_JPEG_QUALITY, 60])
        sizes.update({'c003.tif': (W, H), 'c005.png': (W // 2, H // 2),
                      'c007.jpg': (W, H)})
    rows = ['image,keypoint,x,y']
    for name, (w, h) in sizes.items():
        pts = (points or {}).get(name, [[w / 4, h / 4], [w / 2, h / 2]])
        rows += [f'{name},{k},{x},{y}' for k, (x, y) in zip(KEYPOINTS, pts)]
    (root / 'marks.csv').write_text('\n'.join(rows) + '\n')
    return str(images), str(root / 'marks.csv')


def split_of(out):
    """stem -> split of every converted image."""
    found = {}
    for split in LANDMARK_SPLITS:
        path = osp.join(out, f'{split}.json')
        if osp.exists(path):
            for img in json.load(open(path))['images']:
                found[osp.splitext(img['original_file'])[0]] = split
    return found


def convert(root, images, csv, **kwargs):
    out = str(root / kwargs.pop('name', 'out'))
    summary = convert_landmarks(out, images, KEYPOINTS, csv=csv,
                                progress=False, **kwargs)
    return out, summary


def test_png_and_tiff_of_the_same_pixels_hash_equal(tmp_path):
    """The hash is of the decoded pixels: a PNG and a TIFF of one image
    match exactly; an 8-bit and a 16-bit copy do not (exact) but are a
    near pair."""
    cv2.imwrite(str(tmp_path / 'a.png'), smooth(1))
    cv2.imwrite(str(tmp_path / 'a.tif'), smooth(1))
    cv2.imwrite(str(tmp_path / 'a16.tif'), smooth(1, np.uint16))
    found = {n: image_hashes(read_image(str(tmp_path / n)).array)
             for n in ('a.png', 'a.tif', 'a16.tif')}
    assert found['a.png'].pixel_sha256 == found['a.tif'].pixel_sha256
    assert found['a.png'].pixel_sha256 != found['a16.tif'].pixel_sha256
    pairs = find_duplicates(found)
    kinds = {(p.first, p.second): p.kind for p in pairs}
    assert kinds == {('a.png', 'a.tif'): 'exact', ('a.png', 'a16.tif'): 'near',
                     ('a.tif', 'a16.tif'): 'near'}


def test_resized_and_recompressed_copies_are_near_and_others_not():
    different = {f'{i}': image_hashes(smooth(i)) for i in range(30)}
    assert find_duplicates(different) == []
    copies = dict(
        orig=image_hashes(smooth(5)),
        half=image_hashes(cv2.resize(smooth(5), (W // 2, H // 2),
                                     interpolation=cv2.INTER_AREA)),
        jpeg=image_hashes(cv2.imdecode(
            cv2.imencode('.jpg', smooth(5), [cv2.IMWRITE_JPEG_QUALITY,
                                             50])[1], 0)))
    pairs = find_duplicates(copies)
    assert {(p.first, p.second, p.kind) for p in pairs} == {
        ('half', 'orig', 'near'), ('jpeg', 'orig', 'near'),
        ('half', 'jpeg', 'near')}
    assert all(p.distance <= 6 and p.correlation >= 0.95 for p in pairs)


def test_split_selection_without_units_is_the_image_by_image_one():
    """Every image its own unit: the selection of the rule before units
    (a seeded permutation of the stems, cut at the counts)."""
    stems = [f'{i:03d}' for i in range(40)]
    for seed in range(5):
        order = np.random.default_rng([seed, 1]).permutation(40)
        test = hold_out_test(stems, 0.2, seed)
        assert test['test'] == sorted(stems[i] for i in order[:8])
        rest = test['rest']
        order = np.random.default_rng(seed).permutation(len(rest))
        held = hold_out_splits(rest, 3, 2, seed)
        assert held['val'] == sorted(rest[i] for i in order[:3])
        assert held['calib'] == sorted(rest[i] for i in order[3:5])
        assert held == hold_out_splits(rest, 3, 2, seed,
                                       split_units(rest))


def test_duplicate_pair_never_straddles_two_splits(tmp_path):
    """Exact (PNG vs TIFF), resized and JPEG-recompressed copies land in
    the split of their original for every seed; the report and the
    summary name every pair."""
    images, csv = write_set(tmp_path)
    for seed in range(4):
        out, summary = convert(tmp_path, images, csv, split_seed=seed,
                               test_fraction=0.3, num_val=2, num_calib=2,
                               name=f'out{seed}')
        split = split_of(out)
        for a, b in (('003', 'c003'), ('005', 'c005'), ('007', 'c007')):
            assert split[a] == split[b], (seed, a, split)
    report = json.load(open(osp.join(out, 'conversion_report.json')))
    pairs = {tuple(p['images']): (p['kind'], p['annotations'])
             for p in report['duplicates']['pairs']}
    assert pairs[('003.png', 'c003.tif')] == ('exact', 'same')
    assert pairs[('005.png', 'c005.png')][0] == 'near'
    assert pairs[('007.png', 'c007.jpg')][0] == 'near'
    assert len(pairs) == 3
    text = summary.format()
    assert 'duplicates: 3 pair(s) in 3 cluster(s)' in text
    assert '003.png ~ c003.tif: exact' in text
    # every record carries its hashes and its cluster
    test = json.load(open(osp.join(out, 'train.json')))
    img = test['images'][0]
    assert len(img['pixel_sha256']) == 64 and len(img['phash']) == 16
    assert test['info']['role'] == 'train'


def test_duplicates_drop_keeps_the_first_by_name(tmp_path):
    images, csv = write_set(tmp_path)
    out, summary = convert(tmp_path, images, csv, duplicates='drop',
                           num_val=2, num_calib=2)
    split = split_of(out)
    assert not {'c003', 'c005', 'c007'} & set(split)
    assert {'003', '005', '007'} <= set(split)
    assert summary.duplicates['dropped'] == ['c003.tif', 'c005.png',
                                             'c007.jpg']
    assert 'dropped c003.tif (a duplicate)' in summary.format()


def test_duplicates_error_names_the_pair(tmp_path):
    images, csv = write_set(tmp_path)
    with pytest.raises(ConversionError,
                       match=r'003\.png and c003\.tif .*exact duplicates'):
        convert(tmp_path, images, csv, duplicates='error')


def test_duplicates_with_different_annotations_kept_and_reported(tmp_path):
    images, csv = write_set(
        tmp_path, points={'c003.tif': [[10, 10], [30, 50]]})
    out, summary = convert(tmp_path, images, csv, num_val=2, num_calib=2)
    pair = next(p for p in summary.duplicates['pairs']
                if p['images'] == ['003.png', 'c003.tif'])
    assert pair['annotations'] == 'differ' and pair['max_difference_px'] > 5
    assert 'annotations differ by up to' in summary.format()
    assert split_of(out)['003'] == split_of(out)['c003']


def test_groups_file_keeps_each_patient_in_one_split(tmp_path):
    images, csv = write_set(tmp_path, count=16, copies=False)
    groups = tmp_path / 'groups.csv'
    groups.write_text('image,group\n' + ''.join(
        f'{i:03d}.png,p{(i - 1) // 4}\n' for i in range(1, 17)))
    for seed in range(3):
        out, summary = convert(tmp_path, images, csv, groups=str(groups),
                               split_seed=seed, test_fraction=0.25,
                               num_val=2, num_calib=2, name=f'g{seed}')
        split = split_of(out)
        for p in range(4):
            assert len({split[f'{i:03d}'] for i in range(4 * p + 1,
                                                          4 * p + 5)}) == 1
        # whole groups: every held-out split holds at least its count
        assert summary.images_per_split['test'] >= 4
        assert summary.images_per_split['val'] >= 2
    record = json.load(open(osp.join(out, 'train.json')))['images'][0]
    assert record['group'].startswith('p')


@pytest.mark.parametrize('text, match', [
    ('image,group\n001.png,a\n', r'no group for image 002\.png'),
    ('image,group\nzzz.png,a\n', r"listed image\(s\) not in .*'zzz\.png'"),
    ('name,group\n', r'header must be "image,group"'),
    ('stem,group\n001,a\n001,b\n', r"groups\.csv:3: stem '001' is listed "
     'twice'),
])
def test_bad_groups_file_is_a_named_fault(tmp_path, text, match):
    images, csv = write_set(tmp_path, count=4, copies=False)
    groups = tmp_path / 'groups.csv'
    groups.write_text(text)
    with pytest.raises(ConversionError, match=match):
        convert(tmp_path, images, csv, groups=str(groups), test_fraction=0,
                num_val=1, num_calib=1)
