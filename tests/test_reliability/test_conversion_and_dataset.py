"""Conversions are atomic as a whole and check
themselves; the dataset refuses records that do not fit their images.

The killed re-conversions run ``tools/convert_isbi.py``'s ``main`` in real
processes (forked from one launcher subprocess, so the interpreter starts
once) into a folder holding an earlier conversion of another ``--resize``,
and SIGKILL them: at named steps through the converter's testing hook, or
from the outside at whatever point they reached. Afterwards the folder must
hold the complete old or the complete new conversion, the old one
byte-for-byte intact until a conversion completes, and the next run must
clean up and complete.
"""
import contextlib
import hashlib
import json
import os
import os.path as osp
import re
import shutil
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from mmchh.datasets.data_checks import (DatasetError, MissingDataError,
                                        image_header_size)
from mmchh.datasets.converters import (CONVERSION_MARKER, KILL_AT_ENV,
                                       NO_EXCHANGE_ENV, ConversionError,
                                       convert_isbi,
                                       find_interrupted_conversion)
from mmchh.testing import folder_digest
from mmchh.utils.errors import InputError

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'convert_isbi.py')
CONFIG = osp.join(REPO, 'configs', 'ceph', 'unet_r34_onehot.py')
OLD_SIZE, NEW_SIZE = (40, 50), (60, 75)
SPLITS = ('train', 'val', 'calib', 'test1', 'test2')


def assert_complete(out, size):
    """``out`` is one complete conversion at ``size``: the marker, every
    split JSON, each image there with the JSON's size, nothing else."""
    with open(osp.join(out, CONVERSION_MARKER)) as f:
        marker = json.load(f)
    assert marker['resize'] == list(size)
    named = {CONVERSION_MARKER}
    for split in marker['splits_written']:
        named.add(f'{split}.json')
        with open(osp.join(out, f'{split}.json')) as f:
            data = json.load(f)
        assert len(data['images']) == marker['images_per_split'][split]
        for img in data['images']:
            assert (img['width'], img['height']) == tuple(size)
            path = osp.join(out, img['file_name'])
            assert Image.open(path).size == tuple(size), path
            named.add(img['file_name'])
    assert set(folder_digest(out)) == named


def siblings(out):
    """Names beside ``out`` left by conversions (temporary or aside)."""
    base = osp.basename(out)
    return sorted(n for n in os.listdir(osp.dirname(out))
                  if n.startswith(base + '.'))


#: Runs tools/convert_isbi.py's ``main`` once per scenario in a forked
#: process (one interpreter start for all of them) and SIGKILLs it: by the
#: converter's testing hook at a named step, or from the outside as soon as
#: its temporary folder appears. Writes scenario -> exit code as JSON.
LAUNCHER = r"""
import json, os, runpy, signal, sys, time
spec = json.loads(sys.argv[1])
tool = runpy.run_path(spec['tool'])
import mmchh.datasets.converters  # imported once, before the forks
codes = {}
for name, case in spec['cases'].items():
    pid = os.fork()
    if pid == 0:
        os.environ.update(case['env'])
        try:
            tool['main'](case['argv'])
        except SystemExit as e:
            os._exit(e.code if isinstance(e.code, int) else 1)
        except BaseException:
            os._exit(3)
        os._exit(0)
    status = None
    if case['external']:
        parent, base = os.path.split(case['out'])
        deadline = time.time() + 60
        while status is None and time.time() < deadline:
            if any(n.startswith(base + '.tmp-') for n in os.listdir(parent)):
                os.kill(pid, signal.SIGKILL)
                break
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
            time.sleep(0.0005)
    if status is None:
        status = os.waitpid(pid, 0)[1]
    codes[name] = os.waitstatus_to_exitcode(status)
with open(spec['result'], 'w') as f:
    json.dump(codes, f)
"""


def convert_argv(root, out, size):
    return [root, out, '--num-val', '1', '--num-calib', '1', '--resize',
            str(size[0]), str(size[1])]


#: scenario -> (environment of the killed run, what the folder holds after)
KILL_STEPS = {
    'mid_resize': ({KILL_AT_ENV: 'image-2'}, 'old'),
    'json_written_not_checked': ({KILL_AT_ENV: 'written'}, 'old'),
    'complete_not_swapped': ({KILL_AT_ENV: 'checked'}, 'old'),
    'exchanged_old_not_removed': ({KILL_AT_ENV: 'exchanged'}, 'new'),
    'fallback_old_aside': ({KILL_AT_ENV: 'aside', NO_EXCHANGE_ENV: '1'},
                           'aside'),
    'fallback_old_aside_next_run_fails': ({
        KILL_AT_ENV: 'aside',
        NO_EXCHANGE_ENV: '1'
    }, 'aside'),
    'fallback_new_in_old_not_removed': ({KILL_AT_ENV: 'swapped',
                                         NO_EXCHANGE_ENV: '1'}, 'new'),
    # a folder without conversion.json (split JSONs and images/ alone
    # prove nothing) is refused before any step: nothing moves
    'refused_pre_marker': ({KILL_AT_ENV: 'aside',
                                       NO_EXCHANGE_ENV: '1'}, 'refused'),
    'external_sigkill': ({}, 'old or new'),
}


@pytest.fixture(scope='module')
def killed_runs(tmp_path_factory):
    """Every kill scenario: an earlier conversion at OLD_SIZE, then a
    re-conversion at NEW_SIZE killed at one moment."""
    from conftest import write_isbi_tree
    base = tmp_path_factory.mktemp('killed')
    root = str(base / 'isbi')
    write_isbi_tree(root, counts=(8, 2, 2))
    template = str(base / 'template')
    convert_isbi(root, template, num_val=1, num_calib=1, resize=OLD_SIZE,
                 progress=False)
    cases = {}
    for case, (env, _) in KILL_STEPS.items():
        out = str(base / case / 'coco')
        os.makedirs(osp.dirname(out))
        shutil.copytree(template, out)
        if case.endswith('pre_marker'):
            os.remove(osp.join(out, CONVERSION_MARKER))
        cases[case] = dict(out=out, env=env, external=not env,
                           argv=convert_argv(root, out, NEW_SIZE))
    result = str(base / 'codes.json')
    proc = subprocess.run(
        [sys.executable, '-c', LAUNCHER, json.dumps(dict(
            tool=TOOL, cases=cases, result=result))],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(result) as f:
        codes = json.load(f)
    return dict(root=root, old=folder_digest(template), codes=codes,
                outs={c: cases[c]['out'] for c in cases})


@pytest.mark.parametrize('case', list(KILL_STEPS))
def test_killed_reconversion_keeps_old_or_new_complete(killed_runs, case):
    out, expected = killed_runs['outs'][case], KILL_STEPS[case][1]
    code = killed_runs['codes'][case]
    old = dict(killed_runs['old'])
    if case.endswith('pre_marker'):
        del old[CONVERSION_MARKER]
    if expected == 'refused':
        assert code == 1 and folder_digest(out) == old
        assert siblings(out) == []
        with pytest.raises(ConversionError, match='does not hold a conv'):
            convert_isbi(killed_runs['root'], out, num_val=1, num_calib=1,
                         resize=NEW_SIZE, progress=False)
        assert folder_digest(out) == old and siblings(out) == []
        return
    assert code == -signal.SIGKILL or (case == 'external_sigkill'
                                       and code == 0), code
    if expected == 'old or new':
        same = folder_digest(out).get(CONVERSION_MARKER) == killed_runs['old'][
            CONVERSION_MARKER]
        expected = 'old' if same else 'new'
    if expected == 'old':
        # nothing of the earlier conversion is lost or changed
        assert folder_digest(out) == old
        assert_complete(out, OLD_SIZE)
    elif expected == 'aside':
        # the fallback's one window: OUT_DIR is missing, the earlier
        # conversion waits intact beside it; reading the data says so
        assert not osp.exists(out)
        aside = find_interrupted_conversion(out)
        assert folder_digest(aside) == old
        with pytest.raises(MissingDataError, match='was interrupted'):
            build_dataset(out, 'test1')
    else:
        assert_complete(out, NEW_SIZE)
    root = killed_runs['root']
    left = siblings(out)
    assert left or code == 0
    if case.endswith('next_run_fails'):
        # the old conversion is put back first: a next run that fails
        # (here: too many held out) still loses nothing
        with pytest.warns(UserWarning, match='interrupted') as said:
            with pytest.raises(ConversionError, match='--num-calib'):
                convert_isbi(root, out, num_val=1, num_calib=99,
                             resize=NEW_SIZE, progress=False)
        assert any('restored the earlier conversion' in str(w.message)
                   for w in said)
        assert folder_digest(out) == old and siblings(out) == []
        left = []
    # the next run repairs what the killed one left and completes
    with pytest.warns(UserWarning, match='interrupted') if left else \
            contextlib.nullcontext():
        convert_isbi(root, out, num_val=1, num_calib=1, resize=NEW_SIZE,
                     progress=False)
    assert_complete(out, NEW_SIZE)
    assert siblings(out) == []
    assert len(build_dataset(out, 'test1')) == 2


def test_foreign_output_folder_is_refused_and_kept(tmp_path, isbi_tree):
    root = str(tmp_path / 'isbi')
    isbi_tree(root)
    # a folder of the user's own files
    mine = tmp_path / 'mine'
    mine.mkdir()
    (mine / 'notes.txt').write_text('precious')
    with pytest.raises(ConversionError, match='does not hold a conversion'):
        convert_isbi(root, str(mine), num_val=1, num_calib=1)
    assert folder_digest(str(mine)) == {'notes.txt': hashlib.sha256(
        b'precious').hexdigest()}
    # an earlier conversion with a file of the user's added
    out = str(tmp_path / 'coco')
    convert_isbi(root, out, num_val=1, num_calib=1, resize=OLD_SIZE,
                 progress=False)
    extra = osp.join(out, 'images', 'my_drawing.txt')
    open(extra, 'w').write('mine')
    before = folder_digest(out)
    with pytest.raises(ConversionError) as err:
        convert_isbi(root, out, num_val=1, num_calib=1, resize=NEW_SIZE,
                     progress=False)
    assert extra in str(err.value) and 'refusing' in str(err.value)
    assert folder_digest(out) == before and siblings(out) == []
    # the release itself, or a folder holding it
    for bad in (root, str(tmp_path)):
        with pytest.raises(ConversionError):
            convert_isbi(root, bad, num_val=1, num_calib=1)
    # a file
    with pytest.raises(ConversionError, match='not a folder') as err:
        convert_isbi(root, osp.join(root, 'RawImage', 'TrainingData',
                                    '001.bmp'))
    assert isinstance(err.value, InputError)


def test_reconversion_replaces_the_whole_folder(tmp_path, isbi_tree):
    """A re-conversion leaves nothing of the earlier one behind (no stale
    image or JSON), also through a symlinked output folder."""
    root = str(tmp_path / 'isbi')
    isbi_tree(root)
    real = str(tmp_path / 'real')
    convert_isbi(root, real, num_val=1, num_calib=1, resize=OLD_SIZE,
                 progress=False)
    link = str(tmp_path / 'link')
    os.symlink(real, link)
    shutil.rmtree(osp.join(root, 'RawImage', 'Test2Data'))
    convert_isbi(root, link, num_val=1, num_calib=1, resize=NEW_SIZE,
                 progress=False)
    assert osp.islink(link) and osp.realpath(link) == osp.realpath(real)
    assert_complete(real, NEW_SIZE)
    assert not osp.exists(osp.join(real, 'test2.json'))
    assert siblings(real) == []


# ---------------------------------------------------------------------------
# the dataset refuses records that do not fit their files
# ---------------------------------------------------------------------------
def build_dataset(out, split):
    from mmengine.registry import init_default_scope
    from mmpose.registry import DATASETS
    init_default_scope('mmpose')
    return DATASETS.build(
        dict(type='CephalometricDataset', data_root=out,
             ann_file=f'{split}.json', data_prefix=dict(img=''),
             pipeline=[], test_mode=True))


def shrink_first_image(out, split='test1'):
    """Rewrites the split's first image at half size (what a later
    conversion with another --resize would have put there)."""
    with open(osp.join(out, f'{split}.json')) as f:
        img = json.load(f)['images'][0]
    path = osp.join(out, img['file_name'])
    small = cv2.imread(path, cv2.IMREAD_UNCHANGED)[::2, ::2]
    cv2.imwrite(path, small)
    return path, (img['width'], img['height']), small.shape[::-1]


def test_image_of_another_size_is_refused(tmp_path, isbi_tree):
    root, out = str(tmp_path / 'isbi'), str(tmp_path / 'coco')
    isbi_tree(root)
    convert_isbi(root, out, num_val=1, num_calib=1, resize=OLD_SIZE,
                 progress=False)
    path, (w, h), (sw, sh) = shrink_first_image(out)
    with pytest.raises(DatasetError) as err:
        build_dataset(out, 'test1')
    msg = str(err.value)
    assert path in msg and f'{sw}x{sh}' in msg and f'{w}x{h}' in msg
    assert isinstance(err.value, InputError)
    # a missing image is refused the same way, naming the JSON
    os.remove(path)
    with pytest.raises(MissingDataError, match='test1.json'):
        build_dataset(out, 'test1')


def test_header_is_read_without_decoding(tmp_path):
    """BMP, PNG and TIFF sizes come from the header: a file cut right after
    it still measures."""
    img = np.random.default_rng(0).integers(0, 255, (200, 300), np.uint8)
    for ext in ('bmp', 'png', 'tif'):
        path = str(tmp_path / f'x.{ext}')
        Image.fromarray(img).save(path)
        with open(path, 'rb') as f:
            head = f.read(1024)
        with open(path, 'wb') as f:
            f.write(head)
        assert image_header_size(path) == (300, 200), ext
    bad = str(tmp_path / 'bad.png')
    open(bad, 'wb').write(b'not an image')
    with pytest.raises(DatasetError, match='bad.png'):
        image_header_size(bad)


def test_empty_split_is_a_clear_error(tmp_path, isbi_tree):
    """What --num-val/--num-calib 0 used to produce: an empty split, which
    MMEngine fails on with "need at least one array to concatenate"."""
    root, out = str(tmp_path / 'isbi'), str(tmp_path / 'coco')
    isbi_tree(root)
    convert_isbi(root, out, num_val=1, num_calib=1)
    path = osp.join(out, 'val.json')
    data = json.load(open(path))
    data['images'], data['annotations'] = [], []
    json.dump(data, open(path, 'w'))
    with pytest.raises(DatasetError, match='val.json holds no images'):
        build_dataset(out, 'val')


@pytest.fixture(scope='module')
def random_checkpoint(tmp_path_factory):
    """A real checkpoint of the shrunk paper config (untrained weights:
    the data must be refused before any weight matters)."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpose.registry import MODELS

    from conftest import small_ceph_options
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict(small_ceph_options('unused'))
    init_default_scope('mmpose')
    model = MODELS.build(cfg.model)
    path = str(tmp_path_factory.mktemp('ckpt') / 'random.pth')
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), path)
    return path


def test_size_mismatch_through_test_tool(ceph_coco_small, random_checkpoint,
                                         tmp_path):
    from conftest import as_cli_options, small_ceph_options
    data = str(tmp_path / 'coco')
    shutil.copytree(ceph_coco_small, data)
    path, (w, h), (sw, sh) = shrink_first_image(data)
    proc = subprocess.run(
        [sys.executable, 'tools/test.py', CONFIG, random_checkpoint,
         '--work-dir', str(tmp_path / 'work'), '--cfg-options',
         *as_cli_options(small_ceph_options(data))],
        capture_output=True, text=True, cwd=REPO,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode != 0
    assert path in proc.stderr, proc.stderr[-3000:]
    assert f'is {sw}x{sh} pixels' in proc.stderr
    assert f'records {w}x{h}' in proc.stderr
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]


# ---------------------------------------------------------------------------
# duplicate stems, option validation, a release without Test2Data
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('where', ['image', 'annotation'])
def test_duplicate_stems_are_errors_or_skipped(tmp_path, isbi_tree, where):
    root = str(tmp_path / 'isbi')
    truth = isbi_tree(root)
    if where == 'image':
        first = osp.join(root, 'RawImage', 'TrainingData', '002.bmp')
        second = first[:-4] + '.png'
        shutil.copy(first, second)
    else:
        first = osp.join(root, 'AnnotationsByMD', '400_junior', '002.TXT')
        second = first[:-4] + '.txt'
        shutil.copy(second, first)
    out = str(tmp_path / 'coco')
    with pytest.raises(ConversionError) as err:
        convert_isbi(root, out, num_val=1, num_calib=1)
    assert first in str(err.value) and second in str(err.value)
    assert not osp.exists(out) and siblings(out) == []
    with pytest.warns(UserWarning, match='skipping'):
        summary = convert_isbi(root, out, num_val=1, num_calib=1,
                               skip_bad=True)
    assert len(summary.skipped) == 1 and 'skipped 1' in summary.format()
    converted = set()
    for split in SPLITS:
        for img in json.load(open(osp.join(out, f'{split}.json')))['images']:
            converted.add(osp.splitext(osp.basename(
                img['original_file']))[0])
    assert converted == set(truth) - {'002'}


def test_exif_rotated_image_is_refused(tmp_path, isbi_tree):
    """A JPEG whose EXIF says "rotate": the pipeline would rotate it away
    from its annotation."""
    root = str(tmp_path / 'isbi')
    isbi_tree(root)
    bmp = osp.join(root, 'RawImage', 'TrainingData', '002.bmp')
    img = Image.open(bmp)
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(bmp[:-4] + '.jpg', exif=exif)
    os.remove(bmp)
    with pytest.raises(ConversionError, match='002.jpg: EXIF orientation 6'):
        convert_isbi(root, str(tmp_path / 'coco'), num_val=1, num_calib=1)


OPTION_CASES = {
    'resize_zero': (['--resize', '0', '50'], '--resize'),
    'resize_negative': (['--resize', '-4', '50'], '--resize'),
    'resize_huge': (['--resize', '100000', '50'], '--resize'),
    'num_val_zero': (['--num-val', '0'], '--num-val 0: the validation'),
    'num_calib_zero': (['--num-calib', '0'], '--num-calib 0: temperature'),
    'num_val_negative': (['--num-val', '-1'], '--num-val -1'),
    'spacing_zero': (['--spacing', '0'], '--spacing'),
    'spacing_negative': (['--spacing', '-0.1'], '--spacing'),
    'spacing_nan': (['--spacing', 'nan'], '--spacing'),
    'spacing_inf': (['--spacing', '0.1', 'inf'], '--spacing'),
    'spacing_three': (['--spacing', '0.1', '0.1', '0.1'], '--spacing'),
    'split_seed_negative': (['--split-seed', '-1'], '--split-seed'),
}


@pytest.mark.parametrize('case', list(OPTION_CASES))
def test_options_are_validated_before_anything_is_written(
        tmp_path, isbi_tree, monkeypatch, capsys, case):
    import runpy
    import warnings
    monkeypatch.setattr(warnings, 'formatwarning', warnings.formatwarning)
    tool = runpy.run_path(TOOL)
    root, out = str(tmp_path / 'isbi'), str(tmp_path / 'coco')
    isbi_tree(root, counts=(3, 1, 1))
    argv, needle = OPTION_CASES[case]
    with pytest.raises(SystemExit) as exc:
        tool['main']([root, out, *argv])
    # a number that is not a finite plain decimal is refused by argparse
    # (status 2, its one line on stderr); the rest by the converter
    msg = capsys.readouterr().err.strip() if exc.value.code == 2 else str(
        exc.value.code)
    assert msg.startswith('convert_isbi.py: error: ') and '\n' not in msg
    assert needle in msg
    assert '--skip-bad' not in msg
    assert not osp.exists(out) and siblings(out) == []


def test_release_without_test2(tmp_path, isbi_tree):
    root, out = str(tmp_path / 'isbi'), str(tmp_path / 'coco')
    isbi_tree(root)  # 6 train, 2 test1, 2 test2 (009, 010)
    shutil.rmtree(osp.join(root, 'RawImage', 'Test2Data'))
    summary = convert_isbi(root, out, num_val=1, num_calib=1,
                           resize=OLD_SIZE, progress=False)
    text = summary.format()
    assert re.search(r'test2\s+0 images \(RawImage/Test2Data not found; 2 '
                     r'annotation file\(s\) numbered after', text), text
    assert summary.skipped == []
    assert summary.written == ['train', 'val', 'calib', 'test1']
    assert not osp.exists(osp.join(out, 'test2.json'))
    assert_complete(out, OLD_SIZE)
    # what the configs load works; asking for test2 says why there is none
    for split in ('train', 'val', 'calib', 'test1'):
        assert len(build_dataset(out, split)) > 0
    with pytest.raises(MissingDataError,
                       match='wrote no test2 split: RawImage/Test2Data'):
        build_dataset(out, 'test2')
    # an annotation without its image before the last image is still bad
    os.remove(osp.join(root, 'RawImage', 'TrainingData', '002.bmp'))
    with pytest.raises(ConversionError, match='002.txt: annotation has no'):
        convert_isbi(root, out, num_val=1, num_calib=1)
