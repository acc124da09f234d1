"""benchmarks/conformal_scores.py --quick runs end to end and writes every
row (the figures of docs/results/conformal_scores.json come from the full
run; here only that the script works and its numbers are sane)."""
from test_benchmarks.quick_run import run_quick


def test_conformal_scores_quick(tmp_path):
    proc, result = run_quick('conformal_scores.py', tmp_path / 'scores.json',
                             '--seeds', '1')
    for family in ('unimodal', 'multimodal'):
        rows = result['families'][family]
        assert {(r['score'], r['level']) for r in rows} == {
            (s, lv) for s in ('density', 'mass', 'disc')
            for lv in (0.8, 0.9, 0.95)
        }
        for r in rows:
            # 1000 test maps: a valid threshold covers near its level
            assert r['coverage']['mean'] >= r['level'] - 0.05
            assert r['median_area']['mean'] > 0
    assert 'mass' in proc.stdout and 'density' in proc.stdout
