"""Inference over a folder of synthetic X-rays with the paper's model
(random weights): the bare loop of read + forward, what ``tools/infer.py``
runs once the model is loaded (``infer_files``), the tool's ``main()`` with
its model load, and the start of a fresh Python process with its imports.
"""
import contextlib
import cProfile
import io
import os
import os.path as osp
import pstats
import statistics
import subprocess
import sys
import time
import warnings

from .timing import interleaved, log, sync

#: The checkout (a fresh Python starts there, as a user's would).
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

#: What a fresh ``python tools/infer.py`` imports before its first image.
STARTUP_IMPORTS = ('import torch, mmchh, mmpose.apis, mmchh.apis, '
                   'mmchh.apis.batch_infer')


def write_folder(folder, num, size):
    """``num`` synthetic 8-bit grey PNG X-rays of ``size`` (W, H)."""
    import cv2
    import numpy as np

    from mmchh.datasets.synthetic import synthetic_ceph_sample
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
    """``init_landmark_model`` of the files, without the warning that
    random weights are uncalibrated."""
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


def infer_cli(tool, folder, cfg_path, ckpt_path, out, device, batch,
              amp=False):
    """``tools/infer.py`` as the user runs it, through its ``main()``
    (``amp``: with ``--amp``)."""
    argv = [folder, '--config', cfg_path, '--checkpoint', ckpt_path,
            '--out-dir', out, '--no-overlay', '--no-progress', '--device',
            device, '--batch-size', str(batch)] + (['--amp'] if amp else [])
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
    """Images/s of ``num`` images at the median of ``seconds``."""
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
