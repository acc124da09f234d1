"""Inference throughput of ``tools/infer.py`` over a folder, against a bare
loop of read + forward.

A folder of synthetic 640 x 800 8-bit PNG X-rays
(:func:`mmchh.testing.synthetic_ceph.synthetic_ceph_sample`) and the paper's
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

Usage:
    python benchmarks/infer_throughput.py [--quick] [--images N] [--reps R]
        [--threads T] [--profile] [--json OUT]

``--quick`` uses 4 tiny (64 x 96) images and one repetition (the smoke test
in tests/test_benchmarks runs it); progress goes to stderr, the table to
stdout. ``measure(quick)`` gives the results as a dict.
"""
import argparse
import contextlib
import cProfile
import io
import os
import os.path as osp
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(HERE)
for _p in (HERE, REPO):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from harness.machine import machine_info  # noqa: E402
from harness.timing import interleaved, log, sync  # noqa: E402

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
}
#: What a fresh ``python tools/infer.py`` imports before its first image.
STARTUP_IMPORTS = ('import torch, mmchh, mmpose.apis, mmchh.apis, '
                   'mmchh.apis.batch_infer')


def settings(quick):
    """The settings of a full run or of ``--quick``."""
    return {name: v[1 if quick else 0] for name, v in SETTINGS.items()}


def write_folder(folder, num, size):
    """``num`` synthetic 8-bit grey PNG X-rays of ``size`` (W, H)."""
    import cv2
    import numpy as np

    from mmchh.testing.synthetic_ceph import synthetic_ceph_sample
    os.makedirs(folder, exist_ok=True)
    for i in range(num):
        image = synthetic_ceph_sample(np.random.default_rng([7, i]),
                                      image_size=tuple(size))['image']
        cv2.imwrite(osp.join(folder, f'xray_{i:03d}.png'), image)
    return sorted(osp.join(folder, n) for n in os.listdir(folder))


def write_model(workdir, input_size):
    """The paper's config (model input ``input_size``) and random weights
    as files, as a user hands them to ``tools/infer.py``.

    Returns:
        tuple: (config path, checkpoint path)
    """
    import torch
    from mmpose.registry import MODELS

    import ours
    cfg = ours.load_config(input_size)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    tag = 'x'.join(str(v) for v in input_size)
    cfg_path = osp.join(workdir, f'config_{tag}.py')
    ckpt_path = osp.join(workdir, f'random_{tag}.pth')
    cfg.dump(cfg_path)
    torch.save(dict(state_dict=model.state_dict(), meta={}), ckpt_path)
    return cfg_path, ckpt_path


def load_model(cfg_path, ckpt_path, device):
    from mmchh.apis import init_landmark_model
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)  # random: uncalibrated
        return init_landmark_model(cfg_path, ckpt_path, device)


def bare_loop(model, paths, batch, device):
    """``cv2.imread`` + normalise + the network's forward, in batches."""
    import cv2
    import numpy as np
    import torch
    pre = model.data_preprocessor
    mean, std = pre.mean.to(device), pre.std.to(device)
    for start in range(0, len(paths), batch):
        greys = [cv2.imread(p, cv2.IMREAD_GRAYSCALE)
                 for p in paths[start:start + batch]]
        x = torch.from_numpy(np.stack(greys)).to(device)
        x = (x[:, None].float().expand(-1, 3, -1, -1) - mean) / std
        with torch.no_grad():
            model.head.forward(model.extract_feat(x))
    sync(device)


class Runs:
    """Fresh output folders for the repeated runs of one side."""

    def __init__(self, workdir):
        self.workdir, self.count = workdir, 0

    def next(self, tag):
        self.count += 1
        return osp.join(self.workdir, f'out_{tag}_{self.count}')


def infer_cli(tool, folder, cfg_path, ckpt_path, out, device, batch):
    """``tools/infer.py`` as the user runs it, through its ``main()``."""
    argv = [folder, '--config', cfg_path, '--checkpoint', ckpt_path,
            '--out-dir', out, '--no-overlay', '--no-progress', '--device',
            device, '--batch-size', str(batch)]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter('ignore', UserWarning)
        code = tool.main(argv)
    if code != 0:
        raise RuntimeError(f'tools/infer.py {" ".join(argv)} exited {code}')


def startup_s():
    """Seconds for a fresh Python to start and import what infer needs."""
    t = time.perf_counter()
    subprocess.run([sys.executable, '-c', STARTUP_IMPORTS], check=True,
                   cwd=REPO)
    return time.perf_counter() - t


def rate(num, seconds):
    return dict(images_per_s=num / statistics.median(seconds),
                median_s=statistics.median(seconds), all_s=seconds)


def bench_paper_model(s, device, workdir, folder, paths, results):
    """The bare loop, infer_files and main() with the paper's model."""
    from mmchh.apis.batch_infer import infer_files
    from mmchh.testing import load_tool
    n, batch = len(paths), s['batch']
    cfg_path, ckpt_path = write_model(workdir, s['size'])
    t = time.perf_counter()
    model = load_model(cfg_path, ckpt_path, device)  # imports: warm-up
    log(f'model loaded in {time.perf_counter() - t:.1f} s (first time, '
        'with imports)')
    tool, runs = load_tool('infer'), Runs(workdir)
    outs = []

    def files():
        outs.append(runs.next('files'))
        infer_files(model, folder, outs[-1], batch_size=batch, overlay=False,
                    progress=False)

    fns = {
        'bare_b1': lambda: bare_loop(model, paths, 1, device),
        f'bare_b{batch}': lambda: bare_loop(model, paths, batch, device),
        'infer_files': files,
        'infer_main': lambda: infer_cli(tool, folder, cfg_path, ckpt_path,
                                        runs.next('main'), device, batch),
    }
    if s['warmup']:
        log('warm-up over the first batch ...')
        bare_loop(model, paths[:batch], 1, device)
        bare_loop(model, paths[:batch], batch, device)
        first = osp.join(workdir, 'first_batch')
        os.makedirs(first)
        for p in paths[:batch]:
            os.symlink(p, osp.join(first, osp.basename(p)))
        infer_files(model, first, runs.next('warmup'), batch_size=batch,
                    overlay=False, progress=False)
    if s['time_load']:
        fns['model_load'] = lambda: load_model(cfg_path, ckpt_path, device)
    log(f'{n} images of {s["size"][0]} x {s["size"][1]}: '
        f'{s["reps"]} interleaved repetitions of {list(fns)} ...')
    times = interleaved(fns, s['reps'], 0, device)
    for k, v in times.items():
        results[k] = rate(n, v) if k != 'model_load' else dict(
            median_s=statistics.median(v), all_s=v)
        log(f'  {k}: ' + (f'{results[k]["images_per_s"]:.3g} img/s'
                          if k != 'model_load' else
                          f'{results[k]["median_s"]:.2f} s'))
    return model, outs[0]


def profile_infer(model, folder, out, batch, top=25):
    """The ``top`` entries (cumulative time) of one infer_files run."""
    from mmchh.apis.batch_infer import infer_files
    prof = cProfile.Profile()
    prof.enable()
    infer_files(model, folder, out, batch_size=batch, overlay=False,
                progress=False)
    prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats('cumulative').print_stats(top)
    return text.getvalue()


def measure(quick, images=None, reps=None, device='cpu',
            profile=False, threads=None):
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


def _fmt(x, nd=3):
    return '-' if x is None else f'{x:.{nd}g}'


def table_rows(r):
    """(measurement, bare loop, ours, ours / bare) per row."""
    b = r['batch']
    size = f'{r["size"][0]} x {r["size"][1]}'
    bare1 = r['bare_b1']['images_per_s']
    bare = r[f'bare_b{b}']['images_per_s']
    rows = [(f'bare loop, batch 1: cv2.imread + normalise + forward '
             f'({r["images"]} images of {size}, img/s)', _fmt(bare1), '-',
             '-')]

    def ours(name, key, ref=bare):
        got = r[key]['images_per_s']
        rows.append((name, _fmt(ref), _fmt(got), _fmt(got / ref)))

    ours(f'infer_files (what tools/infer.py runs), batch {b}, model loaded,'
         f' vs bare loop batch {b} (img/s)', 'infer_files')
    ours(f'tools/infer.py main() in-process, batch {b}, with config and '
         'checkpoint load (img/s)', 'infer_main')
    load = r.get('model_load')
    rows.append(('  model load inside main() (init_landmark_model, s)', '-',
                 _fmt(load and load['median_s']), '-'))
    rows.append(('  process start + imports (fresh python, s; not in the '
                 'rows above)', '-', _fmt(r['startup_s']), '-'))
    return rows


def format_table(results):
    head = ('measurement', 'bare loop', 'ours', 'ours / bare')
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    lines += ['| ' + ' | '.join(row) + ' |' for row in table_rows(results)]
    return '\n'.join(lines)


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
    parser.add_argument('--json', help='also write all results here')
    args = parser.parse_args(argv)
    for name in ('images', 'reps', 'threads'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name} must be >= 1; got {value}')
    results = measure(args.quick, args.images, args.reps, args.device,
                      args.profile, args.threads)
    results['command'] = 'python benchmarks/infer_throughput.py ' + ' '.join(
        sys.argv[1:] if argv is None else argv)
    results['table'] = [list(r) for r in table_rows(results)]
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
