"""benchmarks/run.py --quick runs end to end and prints every row, so the
benchmark suite cannot rot (the figures themselves are not checked: tiny
inputs on a shared machine)."""
import pytest
from test_benchmarks.quick_run import run_quick, table_lines

ROWS = [
    'first-step loss, same weights and input',
    'training step, batch 1',
    'training step, batch 2',
    'peak CPU RSS, batch 1',
    'peak CPU RSS, batch 2',
    'peak GPU memory allocated, batch 1',
    'peak GPU memory allocated, batch 2',
    'memory mode (with_cp): peak CPU RSS, batch 1',
    'memory mode (with_cp): peak CPU memory of training, batch 1',
    'memory mode (with_cp): peak CPU RSS, batch 2',
    'memory mode (with_cp): peak CPU memory of training, batch 2',
    'memory mode (with_cp): training step, batch 1',
    'RSS before the first step',
    'saved for backward by the network',
    'saved for backward by the loss path',
    'inference, batch 1 (',
    'inference, batch 1 (flattened maps',
    'ERE of 57 maps (s): Python loop (1 thread',
    'torch thread)',
    'data pipeline',
    'ISBI-scale epoch',
]


@pytest.mark.filterwarnings('ignore')
def test_run_quick(tmp_path):
    pytest.importorskip('segmentation_models_pytorch')
    proc, results = run_quick('run.py', tmp_path / 'bench.json', '--device',
                              'cpu', timeout=900)
    lines = table_lines(proc.stdout)
    assert lines[0].startswith('| measurement | reference | ours |')
    body = '\n'.join(lines[2:])
    for row in ROWS:
        assert row in body, row
    # every measured row has a ratio; the GPU rows say why they have none
    for ln in lines[2:]:
        cells = [c.strip() for c in ln.strip('|').split('|')]
        assert len(cells) == 6, ln
        if 'not measured (no GPU)' not in ln and 'ISBI' not in ln:
            float(cells[3])
    assert '[bench' in proc.stderr  # progress goes to stderr
    assert results['mode'] == 'quick'
    # both sides computed the same loss on the same weights and input
    loss = results['first_step_loss']
    assert loss['ours'] == pytest.approx(loss['reference'], rel=1e-4)
    assert results['ere']['max_rel_diff_loop_vs_ours'] < 1e-4
    assert set(results['memory']) == {'reference', 'ours', 'ours_cp'}
    # the runtime is read before the model exists, the peak after the steps
    for rows in results['memory'].values():
        for r in rows:
            assert 0 < r['rss_runtime_mb'] <= r['rss_before_mb'] <= \
                r['peak_rss_mb']
    # the memory mode changes memory, not the loss
    assert loss['ours_cp'] == pytest.approx(loss['ours'], rel=1e-4)
    assert 'ours_cp' in results['train_step']['1']
