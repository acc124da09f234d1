"""Keypoint names from a file: one per line, or a converted folder's
metainfo.py read without running it; faults named by file (and line)."""
import json
import os.path as osp

import pytest
from landmark_files import KEYPOINTS, write_landmark_set

from mmchh.datasets.converters import ConversionError, read_keypoint_names
from mmchh.datasets.converters.landmark_report import metainfo_source
from mmchh.testing import run_tool_in_process


def write(path, text):
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


def test_text_file_skips_blank_lines_and_comments(tmp_path):
    path = write(tmp_path / 'names.txt',
                 '# cephalometric landmarks\n\nsella\n  nasion  \n'
                 '# the chin\nmenton\n\n')
    assert read_keypoint_names(path) == ['sella', 'nasion', 'menton']


def test_metainfo_of_a_conversion_and_its_folder(tmp_path):
    names = [f'L{i:02d}' for i in range(37)]
    write(tmp_path / 'metainfo.py', metainfo_source(names, 'own'))
    assert read_keypoint_names(str(tmp_path / 'metainfo.py')) == names
    assert read_keypoint_names(str(tmp_path)) == names


def test_metainfo_is_read_not_run(tmp_path):
    text = metainfo_source(['a', 'b'], 'own')
    path = write(tmp_path / 'metainfo.py',
                 'raise SystemExit("executed")\n' + text)
    assert read_keypoint_names(path) == ['a', 'b']
    path = write(tmp_path / 'computed.py',
                 'names = ["a"]\ndataset_info = dict(keypoint_info={})\n')
    with pytest.raises(ConversionError,
                       match=r'computed.py:2: dataset_info is not a literal'):
        read_keypoint_names(path)


@pytest.mark.parametrize('name,text,match', [
    ('dup.txt', 'sella\nnasion\nsella\n', 'names sella more than once'),
    ('none.txt', '# nothing\n\n', 'names no keypoint'),
    ('space.txt', 'sella\nsoft tissue nasion\n', r'space.txt:2: .* space'),
    ('meta.py', "dataset_info = {'keypoint_info': {0: {'name': '', 'id': 0}"
     '}}\n', 'empty name'),
    ('noinfo.py', 'x = 1\n', r'no dataset_info'),
    ('syntax.py', 'dataset_info = {\n', r'syntax.py:\d+: not a Python file'),
], ids=['repeated', 'empty_file', 'space', 'empty_name', 'no_dataset_info',
        'syntax_error'])
def test_faults_name_the_file(tmp_path, name, text, match):
    path = write(tmp_path / name, text)
    with pytest.raises(ConversionError, match=match):
        read_keypoint_names(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConversionError,
                       match='--keypoints-file .*missing.txt: file does not'):
        read_keypoint_names(str(tmp_path / 'missing.txt'))


def test_cli_takes_the_file_and_refuses_both(tmp_path):
    root, out = str(tmp_path / 'set'), str(tmp_path / 'out')
    write_landmark_set(root, count=1, annotators=('dr_a', ))
    names = write(tmp_path / 'names.txt', '\n'.join(KEYPOINTS) + '\n')
    common = [
        '--images', osp.join(root, 'images'), '--labelme',
        f'dr_a={osp.join(root, "dr_a")}', '--test-fraction', '1'
    ]
    done = run_tool_in_process('convert_landmarks',
                               [out, '--keypoints-file', names, *common])
    assert done.returncode == 0, done.stderr
    with open(osp.join(out, 'test.json')) as f:
        assert json.load(f)['categories'][0]['keypoints'] == list(KEYPOINTS)
    # the converted folder's names feed the next conversion
    again = str(tmp_path / 'again')
    done = run_tool_in_process('convert_landmarks',
                               [again, '--keypoints-file', out, *common])
    assert done.returncode == 0, done.stderr
    done = run_tool_in_process('convert_landmarks', [
        str(tmp_path / 'both'), '--keypoints', 'a', '--keypoints-file',
        names, *common
    ])
    assert done.returncode == 2
    assert 'not allowed with argument' in done.stderr
    dup = write(tmp_path / 'dup.txt', 'sella\nsella\n')
    done = run_tool_in_process('convert_landmarks',
                               [str(tmp_path / 'd'), '--keypoints-file', dup,
                                *common])
    assert done.returncode == 1
    assert done.stderr.strip().endswith('names sella more than once')
