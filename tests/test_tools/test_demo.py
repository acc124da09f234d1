"""tools/demo.py end to end, shrunk with --cfg-options only (the same code
path as ``make demo``): every promised output is written, the Markdown
table is the writer's (``mmchh.demo.results_markdown``) output for the
JSON, the run is recorded with its machine and command, and an earlier
run's outputs cannot pass for this run's."""
import glob
import json
import os
import os.path as osp

import pytest
from conftest import as_cli_options, small_ceph_options

from mmchh import demo
from mmchh.testing import load_tool, run_tool_in_process


def test_demo_writes_every_promised_output(tmp_path):
    data, work = str(tmp_path / 'data'), str(tmp_path / 'work')
    # an earlier run's leftovers must not survive (nor pass for this run's)
    os.makedirs(work)
    stale = osp.join(work, 'best_ceph_MRE_epoch_99.pth')
    with open(stale, 'wb') as f:
        f.write(b'from an earlier run')
    opts = as_cli_options(small_ceph_options('unused', epochs=1))
    # 2 training images beside the held-out validation and calibration ones
    num_train = str(demo.NUM_VAL + demo.NUM_CALIB + 2)
    # in this process: the script runs exactly main(argv); a fresh
    # interpreter would only add ~8 s of imports
    proc = run_tool_in_process(
        'demo', ['--data-dir', data, '--work-dir', work, '--num-train',
                 num_train, '--num-test1', '2', '--num-test2', '1',
                 '--cfg-options'] + opts)
    out = proc.stdout + proc.stderr
    # 2 training images, 1 epoch: beating the baseline is not expected,
    # but the verdict and the exit status must agree
    assert proc.returncode in (0, 1), out[-3000:]
    assert 'Traceback' not in out, out[-3000:]
    if 'does NOT beat' in out:
        assert proc.returncode == 1, out[-3000:]
    assert not osp.exists(stale)
    with open(osp.join(work, 'demo_results.json')) as f:
        results = json.load(f)
    missing = demo.missing_outputs(work)
    if results['test1']['unc/AUC'] is None:
        # every landmark erroneous (a 1-epoch model): no ROC can be drawn,
        # and the demo must say that a promised file is missing
        assert missing == ['unc_roc.png'], out[-3000:]
        assert f'demo.py: error: {work} lacks unc_roc.png' in out
        assert proc.returncode == 1
    else:
        assert missing == [], out[-3000:]
    with open(osp.join(work, 'demo_results.md')) as f:
        assert f.read() == demo.results_markdown(results)
    run = results['run']
    assert run['command'].startswith('python tools/demo.py --data-dir ')
    assert run['machine']['logical_cpus'] == os.cpu_count()
    assert run['duration_s'] > 0
    assert results['test1']['ceph/num_landmarks'] == 2 * 19
    # calibration's effect on Test1, paired over the same test images
    change = results['test1_calibration_change']
    assert set(change) == {'NLL', 'ECE', 'AUC'}
    assert change['NLL']['num_images'] == 2
    assert change['NLL']['estimate'] == pytest.approx(
        results['test1']['unc/NLL'] -
        results['test1_uncalibrated']['unc/NLL'], abs=1e-5)
    assert 'Test1 images (paired bootstrap)' in out
    # the metrics' own intervals over images
    assert results['test1']['ceph/MRE_low'] <= results['test1']['ceph/MRE']
    # the conformal regions beside their disc baseline, printed and stored
    assert 'Test1 conformal regions' in out and 'disc baseline' in out
    for key in ('coverage', 'area_mm2', 'disc_coverage', 'disc_area_mm2'):
        assert 'unc/conformal/' + key in results['test1'], key
    assert results['calibration']['conformal']['score'] == 'mass'
    # the table shows this run's numbers
    assert f'{results["test1"]["ceph/MRE"]:.2f} mm' in demo.results_markdown(
        results)
    for pattern in demo.DEMO_DATA_OUTPUTS:
        assert glob.glob(osp.join(data, pattern)), pattern


def test_demo_refuses_counts_it_cannot_split(capsys):
    tool = load_tool('demo')
    least = demo.NUM_VAL + demo.NUM_CALIB + 1
    for argv, text in ((['--num-train', str(least - 1)],
                        f'--num-train must be >= {least}'),
                       (['--num-test1', '0'], '--num-test1 must be >= 1')):
        with pytest.raises(SystemExit) as exc:
            tool.parse_args(argv)
        assert exc.value.code == 2
        assert text in capsys.readouterr().err
