"""benchmarks/claims_over_seeds.py's report stage: from the files its test
stage writes (each test's metrics JSON and UncertaintyMetric's per-landmark
table), the spread over seeds, the paired comparisons and the tables. The
train and test stages are the project's own tools (tested elsewhere); the
figures of docs/results/claims_over_seeds.json come from the full run."""
import importlib.util
import json
import os
import os.path as osp

import numpy as np
import pytest

from mmchh.utils.io import write_json, write_npz

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'benchmarks', 'claims_over_seeds.py')


@pytest.fixture(scope='module')
def claims():
    spec = importlib.util.spec_from_file_location('claims', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def stages(claims):
    """The script's stages (``benchmarks/harness/claims_runs.py``, importable
    once the script has put ``benchmarks/`` on the path)."""
    import harness.claims_runs
    return harness.claims_runs


def write_test(work, variant, rng, mre, num_images=6, k=4):
    out = osp.join(work, 'test', variant)
    os.makedirs(out)
    m = num_images * k
    error = rng.gamma(4.0, mre / 4.0, m)
    write_npz(
        osp.join(out, 'unc_landmarks.npz'),
        dict(sample=np.repeat([f'{i}.png' for i in range(num_images)], k),
             landmark=np.tile(np.arange(k), num_images), error=error,
             ere=error * rng.uniform(0.5, 1.5, m),
             confidence=rng.uniform(0.1, 0.5, m),
             hit=rng.uniform(size=m) < 0.3, nll=rng.gamma(3.0, 1.0, m),
             counted=np.ones(m, bool), invalid=np.zeros(m, bool),
             unit=np.array('mm')))
    metrics = {'ceph/MRE': float(error.mean()), 'ceph/MRE_low': 0.0,
               'ceph/MRE_high': 9.0, 'unc/NLL': 2.0 + mre}
    write_json(osp.join(out, 'metrics.json'), metrics)
    return metrics


def test_report_from_written_test_runs(claims, stages, tmp_path, capsys):
    work = str(tmp_path)
    rng = np.random.default_rng(0)
    mres = {}
    # the --amp arms drawn after the others
    fp32_arms = [a for a in stages.ARMS if a not in stages.AMP_ARMS]
    for arms, cross in ((fp32_arms, False), (list(stages.ARMS), True)):
        for seed in (0, 1):
            for arm in arms:
                run = stages.run_dir(
                    claims.parse_args(['--work-dir', work]), arm, seed)
                for name, _, _ in stages.variants(arm):
                    if (arm in stages.AMP_ARMS or
                            name in stages.CROSS_PRECISION) != cross:
                        continue
                    # 'both' is better by construction: lower errors
                    mre = 1.0 if arm == 'both' else 2.0
                    mres[arm, name, seed] = write_test(run, name, rng, mre)[
                        'ceph/MRE']
    out = osp.join(work, 'claims.json')
    assert claims.main(['--stage', 'report', '--seeds', '0', '1',
                        '--work-dir', work, '--json', out]) == 0
    result = json.load(open(out))
    rows = {(r['arm'], r['variant']): r for r in result['rows']}
    assert set(rows) == {(arm, name) for arm in stages.ARMS
                         for name, _, _ in stages.variants(arm)}
    spread = rows['mean', 'calibrated']['spread']['ceph/MRE']
    values = [mres['mean', 'calibrated', s] for s in (0, 1)]
    assert spread['mean'] == pytest.approx(np.mean(values))
    assert (spread['min'], spread['max']) == (min(values), max(values))
    assert rows['mean', 'calibrated']['per_seed']['0']['ceph/MRE'] == dict(
        value=mres['mean', 'calibrated', 0], low=0.0, high=9.0)
    # a key no test reported stays empty, never invented
    assert rows['both', 'uncalibrated']['spread']['unc/AUC']['n'] == 0
    comps = {c['name']: c for c in result['comparisons']}
    assert 'calibrated - uncalibrated (quarter)' in comps
    both = comps['both annotators - mean (calibrated)']
    for seed in ('0', '1'):
        mre = both['per_seed'][seed]['MRE']
        assert mre['estimate'] == pytest.approx(
            mres['both', 'calibrated', int(seed)] -
            mres['mean', 'calibrated', int(seed)])
    assert both['summary']['MRE']['seeds_below_0'] == 2
    amp = comps['--amp - fp32 (mean, calibrated)']
    assert (amp['a'], amp['b']) == (['mean', 'calibrated'],
                                     ['mean_amp', 'calibrated'])
    assert amp['per_seed']['1']['MRE']['estimate'] == pytest.approx(
        mres['mean_amp', 'calibrated', 1] - mres['mean', 'calibrated', 1])
    printed = capsys.readouterr().out
    assert printed.strip().endswith(claims.format_tables(result).strip())
    # the tables render again from the file alone
    assert claims.main(['--table-from', out]) == 0
    assert claims.format_tables(result) in capsys.readouterr().out


def test_amp_arms_and_variants(claims, stages, tmp_path):
    """--arms mean mean_amp --variants uncalibrated calibrated: the amp
    arm runs the tools with --amp, and the report holds just those rows
    and the comparisons between them."""
    args = claims.parse_args(['--work-dir', str(tmp_path), '--arms', 'mean',
                              'mean_amp', '--variants', 'uncalibrated',
                              'calibrated'])
    assert stages.amp_flag('mean_amp') == ['--amp']
    assert stages.amp_flag('mean') == []
    assert stages.ARMS['mean_amp'][0] == stages.ARMS['mean'][0]
    assert [v[0] for v in stages.variants('mean', args.variants)] == [
        'uncalibrated', 'calibrated']
    rng = np.random.default_rng(1)
    for seed in (0, 1, 2):
        for arm in args.arms:
            for name in args.variants:
                write_test(stages.run_dir(args, arm, seed), name, rng, 2.0)
    out = str(tmp_path / 'amp.json')
    assert claims.main(['--stage', 'report', '--work-dir', str(tmp_path),
                        '--arms', 'mean', 'mean_amp', '--variants',
                        'uncalibrated', 'calibrated', '--json', out]) == 0
    result = json.load(open(out))
    assert {(r['arm'], r['variant']) for r in result['rows']} == {
        (a, v) for a in args.arms for v in args.variants}
    assert {c['name'] for c in result['comparisons']} == {
        'calibrated - uncalibrated (mean)',
        'calibrated - uncalibrated (mean_amp)',
        '--amp - fp32 (mean, uncalibrated)', '--amp - fp32 (mean, calibrated)'}
    assert 'cpu' in result['machine'] and 'native_bf16' in result['machine']


def test_report_needs_the_test_stage(claims, tmp_path):
    with pytest.raises(FileNotFoundError, match='run the test stage'):
        claims.main(['--stage', 'report', '--seeds', '0', '--arms', 'both',
                     '--work-dir', str(tmp_path)])


def test_docs_tables_are_the_recorded_run(claims):
    """docs/seeds.md's tables are the script's rendering of the recorded
    results file, so the documented numbers cannot drift from it."""
    with open(osp.join(REPO, 'docs', 'results', 'claims_over_seeds.json')) as f:
        recorded = json.load(f)
    with open(osp.join(REPO, 'docs', 'seeds.md')) as f:
        doc = f.read()
    begin, end = ('<!-- claims-over-seeds:begin -->',
                  '<!-- claims-over-seeds:end -->')
    table = doc[doc.index(begin) + len(begin):doc.index(end)].strip('\n')
    assert table == claims.format_tables(recorded)
    assert len(recorded['seeds']) >= 3
    assert recorded['num_test1'] == 40
