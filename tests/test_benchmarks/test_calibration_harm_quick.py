"""benchmarks/calibration_harm.py --quick runs end to end (the figures of
docs/results/calibration_harm.json come from the full run with the demo's
trained checkpoint; here a randomly initialised model of the demo config --
nothing trained, no work_dirs/demo needed -- on 30 small synthetic images,
only that the script works and its numbers are consistent)."""
import json
import os.path as osp
import subprocess
import sys

from test_benchmarks.quick_run import REPO, run_quick

SCRIPT = osp.join(REPO, 'benchmarks', 'calibration_harm.py')


def test_calibration_harm_quick(tmp_path):
    out = tmp_path / 'harm.json'
    _, result = run_quick('calibration_harm.py', out, '--data-dir',
                          str(tmp_path / 'pool'), timeout=600)
    assert result['model'].startswith('random-init')
    assert result['pool']['images'] == 30 and result['seeds'] == 2
    for regime in ('raw', 'calibrated'):
        rows = result['regimes'][regime]
        assert set(rows) == {'5', '10'}
        for r in rows.values():
            assert r['draws'] == 2
            assert abs(sum(r['chosen'].values()) - 1) < 1e-9
            # do no harm: T = 1 changes nothing, so every draw that kept
            # T = 1 has a zero change
            if r['chosen']['identity'] == 1:
                assert r['mean_change_do_no_harm'] == 0
            for key in ('worse_current', 'worse_do_no_harm'):
                assert 0 <= r[key] <= 1
    # the table renders from the JSON alone
    table = subprocess.run(
        [sys.executable, SCRIPT, '--table-from', str(out)],
        capture_output=True, text=True, timeout=120)
    assert table.returncode == 0, table.stderr
    assert table.stdout.count('\n') == 2 + 4 and '| raw | 5 |' in table.stdout


def test_method_doc_table_is_the_recorded_run():
    """The table in docs/method.md ("Do no harm") is the script's own
    rendering of docs/results/calibration_harm.json."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('bench_calibration_harm',
                                                  SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with open(osp.join(REPO, 'docs', 'results',
                       'calibration_harm.json')) as f:
        recorded = json.load(f)
    assert recorded['model'] == 'trained' and recorded['seeds'] >= 30
    with open(osp.join(REPO, 'docs', 'method.md')) as f:
        doc = f.read()
    table = doc.split('<!-- calibration-harm:begin -->\n',
                      1)[1].split('<!-- calibration-harm:end -->', 1)[0]
    assert table == module.format_table(recorded) + '\n'
