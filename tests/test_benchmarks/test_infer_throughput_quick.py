"""benchmarks/infer_throughput.py --quick runs end to end and prints every
row, so the throughput benchmark cannot rot (the figures themselves are not
checked: 4 tiny images on a shared machine)."""
import json
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'benchmarks', 'infer_throughput.py')

ROWS = [
    'bare loop, batch 1: cv2.imread + normalise + forward (4 images',
    'infer_files (what tools/infer.py runs), batch 4, model loaded, vs bare',
    'tools/infer.py main() in-process, batch 4',
    'model load inside main()',
    'process start + imports',
]


def test_infer_throughput_quick(tmp_path):
    out = tmp_path / 'throughput.json'
    proc = subprocess.run(
        [sys.executable, SCRIPT, '--quick', '--json', str(out)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('|')]
    assert lines[0] == '| measurement | bare loop | ours | ours / bare |'
    body = '\n'.join(lines[2:])
    for row in ROWS:
        assert row in body, row
    assert '[bench' in proc.stderr  # progress goes to stderr
    result = json.loads(out.read_text())
    assert result['mode'] == 'quick' and result['images'] == 4
    for key in ('bare_b1', 'bare_b4', 'infer_files', 'infer_main'):
        assert result[key]['images_per_s'] > 0, key
    assert result['command'].startswith('python benchmarks/infer_throughput')
