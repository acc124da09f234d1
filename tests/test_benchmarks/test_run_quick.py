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
    main, amp = proc.stdout.split('\n\nCPU ', 1)
    lines = table_lines(main)
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
    check_amp_rows(amp, results)


AMP_ROWS = [
    'fp32 training step: ours / bare-PyTorch reference',
    '--amp training step: ours / fp32 reference',
    '--amp training step: ours / ours fp32',
    'fp32 + channels_last training step: ours / ours fp32',
    '--amp + channels_last training step: ours / fp32 reference',
    'memory mode (with_cp) with --amp, training step',
    '--amp predict (softmax + decode + ERE): ours / fp32 bare forward',
    'fp32 predict (softmax + decode + ERE): ours / fp32 bare forward',
]


def check_amp_rows(text, results):
    """The paired mixed-precision table: every row, its median ratio
    between its range, the pairs, and whether the CPU has native bf16."""
    from mmchh.engine.amp import native_bf16_flags
    native = native_bf16_flags()
    assert ('native bf16 (' in text) == bool(native)
    lines = table_lines(text)
    assert lines[0].startswith('| measurement (paired, sides alternated')
    for name, ln in zip(AMP_ROWS, lines[2:]):
        cells = [c.strip() for c in ln.strip('|').split('|')]
        assert cells[0].startswith(name), (name, ln)
        low, high = (float(x) for x in cells[2].split('–'))
        assert 0 < low <= float(cells[1]) <= high and cells[3] == '2'
        assert ('bf16 emulated' in cells[0]) == (not native and
                                                  '--amp' in name)
    assert len(lines) == 2 + len(AMP_ROWS)
    amp = results['amp']
    assert amp['native_bf16'] == list(native)
    times = amp['train_s']
    for row in amp['train']:
        ratios = [a / b for a, b in zip(times[row['num']], times[row['den']])]
        assert row['all'] == pytest.approx(ratios)
