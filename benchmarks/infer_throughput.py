"""Inference throughput of ``tools/infer.py`` over a folder, against a bare
loop of read + forward.

A folder of synthetic 640 x 800 8-bit PNG X-rays
(:func:`mmchh.datasets.synthetic.synthetic_ceph_sample`) and the paper's
model (``benchmarks/ours.py``'s config, random weights saved to a temporary
checkpoint, so uncalibrated: no conformal regions, nothing flagged) are
timed side by side, the repetitions interleaved (ABBA order, as
``benchmarks/run.py`` does) after a warm-up:

    * the bare loop: ``cv2.imread`` + normalise + the network's forward
      (backbone, neck, head convolutions; ``no_grad``), batch 1 and 4;
    * :func:`mmchh.apis.batch_infer.infer_files`, what ``tools/infer.py``
      runs once the model is loaded (read, test pipeline, ``test_step``
      with softmax, decode and ERE, result files, JSON and CSV), batch 4,
      against the bare loop at batch 4;
    * ``tools/infer.py FOLDER --config ... --checkpoint ... --out-dir ...
      --no-overlay --no-progress`` run in-process through its ``main()``
      (config parse, model build and checkpoint load included), with the
      model load timed alone beside it; the start of a fresh Python process
      with the imports ``tools/infer.py`` needs is timed apart (full runs
      only), never mixed into images/s;

Every figure is images/s (higher is better); ratios are ours / bare loop.

``--amp`` measures instead ``tools/infer.py --amp`` (bf16 autocast on a
CPU, fp16 on CUDA) against ``tools/infer.py``, both through ``main()``,
alternated run by run: the median of the per-pair speed-ups with their
range (target >= 2x; ``harness/amp_infer.py``); whether the CPU has native
bf16 is named in the row.

Usage:
    python benchmarks/infer_throughput.py [--quick] [--images N] [--reps R]
        [--threads T] [--profile] [--amp] [--json OUT]

``--quick`` uses 4 tiny (64 x 96) images and one repetition (the smoke test
in tests/test_benchmarks runs it); progress goes to stderr, the table to
stdout. ``measure(quick)`` gives the results as a dict.
"""
import argparse
import os
import os.path as osp
import sys
import tempfile
import time

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(HERE)
sys.path[:0] = [p for p in (HERE, REPO) if p not in sys.path]

from harness.folder_inference import (bench_paper_model,  # noqa: E402
                                      profile_infer, startup_s,
                                      write_folder)
from harness.amp_infer import bench_amp_infer  # noqa: E402
from harness.machine import machine_info  # noqa: E402
from harness.throughput_table import (amp_rows, format_table,  # noqa: E402
                                      table_rows)
from harness.timing import log  # noqa: E402

#: Each setting of a full run and of ``--quick``: name -> (full, quick).
SETTINGS = {
    'size': ((640, 800), (64, 96)),
    'images': (16, 4),
    'reps': (2, 1),
    # a warm-up pass of every side over the first batch (before the reps)
    'warmup': (True, False),
    # init_landmark_model timed alone (quick: not, one model build less)
    'time_load': (True, False),
    # torch threads (None: torch's default). Quick runs use 1: on a machine
    # whose cores are busy, 2 threads make a tiny forward 10x slower
    'threads': (None, 1),
    'batch': (4, 4),
    # --amp: warm-up runs of each side before the timed, alternated ones
    'amp_warmup': (1, 0),
}


def settings(quick):
    """The settings of a full run or of ``--quick``."""
    return {name: v[1 if quick else 0] for name, v in SETTINGS.items()}


def measure(quick, images=None, reps=None, device='cpu',
            profile=False, threads=None, amp=False):
    """Runs the benchmark; returns every figure as a dict (see the
    module's docstring; ``table_rows`` turns it into rows)."""
    import torch
    s = settings(quick)
    for key, value in (('images', images), ('reps', reps),
                       ('threads', threads)):
        if value is not None:
            s[key] = value
    if s['threads'] is not None:
        torch.set_num_threads(s['threads'])
    t0 = time.time()
    results = dict(mode='quick' if quick else 'full', device=device,
                   size=list(s['size']), images=s['images'],
                   batch=s['batch'], reps=s['reps'],
                   machine=machine_info(device),
                   load_average_before=os.getloadavg()[0])
    with tempfile.TemporaryDirectory(prefix='mmchh_infer_bench_') as tmp:
        folder = osp.join(tmp, 'xrays')
        paths = write_folder(folder, s['images'], s['size'])
        if amp:
            bench_amp_infer(s, device, tmp, folder, paths, results)
            results['wall_s'] = time.time() - t0
            results['load_average_after'] = os.getloadavg()[0]
            return results
        model, out = bench_paper_model(s, device, tmp, folder, paths,
                                       results)
        if profile:
            log('profile of one infer_files run:\n' + profile_infer(
                model, folder, out + '_profile', s['batch']))
        del model
        results['startup_s'] = None if quick else startup_s()
    results['wall_s'] = time.time() - t0
    # other processes' load: the figures of a busy machine are not its own
    results['load_average_after'] = os.getloadavg()[0]
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true',
                        help='4 tiny images, one repetition (smoke test)')
    parser.add_argument('--images', type=int, help='images in the folder')
    parser.add_argument('--reps', type=int, help='timed repetitions')
    parser.add_argument('--threads', type=int,
                        help="torch threads (default: torch's; --quick: 1)")
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--profile', action='store_true',
                        help='also print a profile of one infer_files run '
                        '(stderr)')
    parser.add_argument('--amp', action='store_true',
                        help='tools/infer.py --amp against fp32 instead '
                        '(paired runs)')
    parser.add_argument('--json', help='also write all results here')
    args = parser.parse_args(argv)
    for name in ('images', 'reps', 'threads'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name} must be >= 1; got {value}')
    results = measure(args.quick, args.images, args.reps, args.device,
                      args.profile, args.threads, args.amp)
    results['command'] = 'python benchmarks/infer_throughput.py ' + ' '.join(
        sys.argv[1:] if argv is None else argv)
    results['table'] = [list(r) for r in (
        amp_rows(results) if args.amp else table_rows(results))]
    m = results['machine']
    log(f'done in {results["wall_s"]:.0f} s on {m["cpu"]} ({m["cores"]} '
        f'cores, {m["torch_threads"]} torch threads); load average '
        f'{results["load_average_before"]:.1f} before, '
        f'{results["load_average_after"]:.1f} after')
    print(format_table(results))
    if args.json:
        from mmchh.utils.io import write_json
        write_json(args.json, results)
    return results


if __name__ == '__main__':
    main()
