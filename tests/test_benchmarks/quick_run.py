"""How the tests of benchmarks/ run a script's ``--quick`` mode (imported
as ``from test_benchmarks.quick_run import ...``; not a conftest, which
would shadow ``tests/conftest.py`` for tests that import it by name)."""
import json
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def run_quick(script, out, *args, timeout=300):
    """Runs ``python benchmarks/<script> --quick ARGS --json OUT`` in a
    fresh interpreter (as a user would) and checks it exits 0.

    Args:
        script (str): The script's file name, e.g. ``'run.py'``.
        out (pathlib.Path): Where the script writes its JSON.
        *args (str): Further options.
        timeout (float): Seconds the run may take.

    Returns:
        tuple: The finished process (text stdout and stderr) and the JSON
        it wrote.
    """
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'benchmarks', script), '--quick',
         *args, '--json', str(out)],
        capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


def table_lines(stdout):
    """The lines of the Markdown table a benchmark prints."""
    return [ln for ln in stdout.splitlines() if ln.startswith('|')]
