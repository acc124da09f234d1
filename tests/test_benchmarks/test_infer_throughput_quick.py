"""benchmarks/infer_throughput.py --quick runs end to end and prints every
row, so the throughput benchmark cannot rot (the figures themselves are not
checked: 4 tiny images on a shared machine)."""
from test_benchmarks.quick_run import run_quick, table_lines

ROWS = [
    'bare loop, batch 1: cv2.imread + normalise + forward (4 images',
    'infer_files (what tools/infer.py runs), batch 4, model loaded, vs bare',
    'tools/infer.py main() in-process, batch 4',
    'model load inside main()',
    'process start + imports',
]


def test_infer_throughput_quick(tmp_path):
    proc, result = run_quick('infer_throughput.py',
                             tmp_path / 'throughput.json')
    lines = table_lines(proc.stdout)
    assert lines[0] == '| measurement | bare loop | ours | ours / bare |'
    body = '\n'.join(lines[2:])
    for row in ROWS:
        assert row in body, row
    assert '[bench' in proc.stderr  # progress goes to stderr
    assert result['mode'] == 'quick' and result['images'] == 4
    for key in ('bare_b1', 'bare_b4', 'infer_files', 'infer_main'):
        assert result[key]['images_per_s'] > 0, key
    assert result['command'].startswith('python benchmarks/infer_throughput')


def test_infer_throughput_amp_quick(tmp_path):
    """--amp: tools/infer.py with and without --amp, alternated; the row
    holds both images/s, the median per-pair speed-up within its range, and
    says whether the CPU has native bf16."""
    from mmchh.engine.amp import native_bf16_flags
    proc, result = run_quick('infer_throughput.py', tmp_path / 'amp.json',
                             '--amp')
    lines = table_lines(proc.stdout)
    assert lines[0].startswith('| measurement (paired, runs alternated)')
    assert len(lines) == 3
    cells = [c.strip() for c in lines[2].strip('|').split('|')]
    assert cells[0].startswith('tools/infer.py --amp vs fp32')
    assert ('NO native bf16' in cells[0]) == (not native_bf16_flags())
    amp = result['amp_infer']
    sp = amp['speedup']
    assert sp['pairs'] == 1 and sp['min'] <= sp['median'] <= sp['max']
    # the speed-up is fp32 seconds over --amp seconds of the same pair
    assert sp['median'] == amp['fp32']['all_s'][0] / amp['amp']['all_s'][0]
    assert amp['met'] == (sp['median'] >= 2)
