"""HeadlineLogProcessor: the validation/test line holds the headline
numbers with their intervals (hand-made tag dicts), and in a real run of
the demo config the line is short while the run's JSON keeps every
value."""
import glob
import json
import os.path as osp

from mmchh.engine.hooks import HeadlineLogProcessor
from mmchh.engine.hooks.headline_log_processor import (headline_items,
                                                       headline_line)

TAG = {
    'ceph/MRE': 1.467039, 'ceph/MRE_low': 1.392682, 'ceph/MRE_high': 1.56,
    'ceph/SDR_2mm': 78.289474, 'ceph/SDR_2mm_low': 74.342105,
    'ceph/SDR_2mm_high': 81.755406, 'ceph/MRE/sella': 1.2,
    'ceph/SDR_2mm/sella': 75.0, 'unc/ECE': 0.0841, 'unc/ECE_low': 0.0512,
    'unc/ECE_high': 0.148, 'unc/good/count': 107.0,
    'unc/erroneous/count': 45.0, 'unc/good/MRE': 1.39,
    'unc/conformal/coverage': 0.8947, 'data_time': 0.01, 'time': 0.5,
}


def test_headline_items_hand_case():
    assert headline_items(TAG) == [
        'MRE 1.47 mm [1.39, 1.56]', 'SDR 2 mm 78.3% [74.3, 81.8]',
        'ECE 0.0841 [0.0512, 0.148]', 'flagged 45/152', 'coverage 0.89'
    ]


def test_headline_line_names_the_json_and_falls_back():
    line = headline_line('Epoch(val) [3][2/2]', TAG, 'x/vis_data/t.json')
    assert line == ('Epoch(val) [3][2/2]  MRE 1.47 mm [1.39, 1.56] · '
                    'SDR 2 mm 78.3% [74.3, 81.8] · '
                    'ECE 0.0841 [0.0512, 0.148] · flagged 45/152 · '
                    'coverage 0.89 · (17 values in x/vis_data/t.json)')
    # MMPose's metrics: their own headline keys
    assert headline_items({'PCK': 0.91, 'AUC': 0.5, 'EPE': 3.25}) == [
        'PCK 0.9100', 'AUC 0.5000', 'EPE 3.2500']
    # nothing known: the first keys as MMEngine prints them
    assert headline_line('Epoch(test) [1/1]', {'a/b': 0.5, 'n': 3}, None) \
        == 'Epoch(test) [1/1]  a/b: 0.5000 · n: 3 · (2 values)'


def test_full_line_option_keeps_mmengine_line():
    assert HeadlineLogProcessor(full_line=True).full_line
    assert not HeadlineLogProcessor().full_line


def test_demo_run_logs_short_lines_and_full_json(calibrated_small_demo):
    """The demo config trained by the fixture (configs/_base_'s
    default_runtime): each validation line is short and names the JSON,
    which holds every value (per landmark, intervals)."""
    work = calibrated_small_demo['work']
    (log, ) = glob.glob(osp.join(work, '*', '*.log'))
    # the progress lines (eta, time) aside, one line per validation
    lines = [ln for ln in open(log, encoding='utf-8')
             if 'Epoch(val)' in ln and 'eta:' not in ln]
    assert len(lines) >= 2  # after each epoch (and calibration's check)
    for line in lines:
        assert len(line) < 400, line
        assert 'MRE ' in line and 'SDR 2 mm ' in line and 'ECE ' in line
        json_name = line.rsplit(' in ', 1)[1].rstrip(')\n')
        with open(osp.join(work, json_name)) as f:
            records = [json.loads(r) for r in f]
        val = [r for r in records if 'ceph/MRE' in r]
        assert val and all(len(r) > 40 for r in val)
        assert any(k.startswith('ceph/MRE/') for k in val[-1])
