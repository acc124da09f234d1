"""mmchh against a bare-PyTorch reference of the paper's training step.

Every ratio is measured side by side in one run: the reference
(``benchmarks/reference.py``: smp U-Net-R34, dense one-hot targets, exp/sum
softmax, float64 NLL, no MMPose) and ours (``benchmarks/ours.py``: the paper's
config through MMPose's ``TopdownPoseEstimator``, our head, loss, sparse
targets and data preprocessor) get the same weights and the same input, and
their repetitions are interleaved (ABBA order) so that load from other
processes hits both alike. Timings are medians after warm-up.

Measured:
    * training step time, batch 1 and 2 (ours / reference, target <= 0.85);
    * peak memory: CPU RSS of a process per side (and peak allocated GPU
      memory on a GPU), for information (the network's own activations
      dominate), with the tensors each side saves for backward (network vs
      loss path) as the breakdown;
    * the memory mode (``with_cp=True``: activation checkpointing in the
      backbone and the decoder): peak memory of ours with it (own process;
      target <= 0.6 of the reference for the memory training takes -- the
      peak RSS above the runtime's, read before the model is built, the
      CPU counterpart of a GPU's allocated memory -- the whole process's
      peak for information) and its training step at batch 1 (interleaved
      with the two others, target <= 1.35);
    * inference incl. softmax, decode and ERE (our ``test_step``) against
      the bare forward (target <= 1.1);
    * ERE of 150 x 19 full-resolution maps against a per-pixel Python loop
      (timed on a few maps, extrapolated per map; target >= 100x faster);
    * data-pipeline throughput (the config's training pipeline with the
      paper's augmentation) against the images/s a training step consumes;
    * on a GPU only: one epoch at ISBI scale (150 images, batch 4) with AMP
      off and on: time and peak allocated memory.

Usage:
    python benchmarks/run.py [--quick] [--json OUT] [--device cpu|cuda]

``--quick`` uses tiny inputs and 1-2 repetitions (the smoke test in
tests/test_benchmarks runs it); progress goes to stderr, the table to stdout.
"""
import argparse
import json
import math
import os
import os.path as osp
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(HERE)
for _p in (HERE, REPO):
    if _p not in sys.path:
        sys.path.insert(0, _p)

NUM_KEYPOINTS = 19

#: Each setting of a full run and of ``--quick`` (tiny inputs, 1-2
#: repetitions), side by side: name -> (full, quick).
SETTINGS = {
    'size': ((640, 800), (64, 96)),
    'batches': ((1, 2), (1, 2)),
    'train_reps': ({1: 4, 2: 3}, {1: 2, 2: 1}),
    'warmup': (1, 1),
    'mem_steps': (2, 1),
    'infer_reps': (5, 2),
    'infer_flat_reps': (3, 1),
    'ere_images': (150, 3),
    'ere_pool': (3, 1),
    'loop_maps': (3, 1),
    'loader_source_images': (16, 2),
    'loader_images': (48, 8),
    'loader_workers': ((0, 1, 2), (0, 2)),
    'epoch_images': (150, 8),
    'epoch_batch': (4, 4),
}
FULL = {name: full for name, (full, _) in SETTINGS.items()}
QUICK = {name: quick for name, (_, quick) in SETTINGS.items()}
# final-layer scale that flattens the maps (ERE's dense fallback, the worst
# case of inference; see bench_train)
FLAT_SCALE = 0.01


def log(msg):
    print(f'[bench {time.strftime("%H:%M:%S")}] {msg}', file=sys.stderr,
          flush=True)


def sync(device):
    import torch
    if device == 'cuda':
        torch.cuda.synchronize()


def interleaved(fns, reps, warmup, device):
    """Times each callable ``warmup + reps`` times, alternating the order
    (A B, B A, ...); returns {name: [seconds after warm-up]}."""
    names = list(fns)
    times = {k: [] for k in names}
    for i in range(warmup + reps):
        for k in (names if i % 2 == 0 else names[::-1]):
            sync(device)
            t = time.perf_counter()
            fns[k]()
            sync(device)
            if i >= warmup:
                times[k].append(time.perf_counter() - t)
    return times


def make_inputs(batch, size, seed=0):
    """uint8 BGR images (B, 3, H, W) and flat target indices (B, K)."""
    import torch
    w, h = size
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch, 3, h, w), generator=g,
                           dtype=torch.uint8)
    index = torch.randint(0, h * w, (batch, NUM_KEYPOINTS), generator=g)
    return images, index


def build_pair(size, device):
    """Reference, ours and ours in the memory mode (``with_cp``), all with
    the same weights and in train mode."""
    import torch

    import ours
    import reference
    torch.manual_seed(0)
    ref = reference.build_reference(NUM_KEYPOINTS).to(device).train()
    ref_opt = torch.optim.Adam(ref.parameters(), lr=1e-3)
    cfg = ours.load_config(size)
    model, wrapper = ours.build_ours(cfg, device)
    ours.copy_weights(ref, model)
    model_cp, wrapper_cp = ours.build_ours(
        ours.load_config(size, with_cp=True), device)
    ours.copy_weights(ref, model_cp)
    return ref, ref_opt, cfg, model, wrapper, (model_cp, wrapper_cp)


# ---------------------------------------------------------------------------
# training step and inference (one process, interleaved)
# ---------------------------------------------------------------------------
def bench_train(s, device, quick, results):
    import torch

    import ours
    import reference
    w, h = s['size']
    ref, ref_opt, cfg, model, wrapper, (model_cp, wrapper_cp) = build_pair(
        s['size'], device)
    step_rows = {}
    for b in s['batches']:
        images, index = make_inputs(b, s['size'], seed=b)
        target = reference.dense_one_hot(index, h, w)
        data = ours.train_batch(images, index)
        if b == s['batches'][0]:
            # same weights, same input: the first step's losses agree
            loss_ref = float(reference.train_step(ref, ref_opt, images,
                                                  target, device))
            loss_ours = float(ours.train_step(model, wrapper, data).detach())
            loss_cp = float(
                ours.train_step(model_cp, wrapper_cp, data).detach())
            results['first_step_loss'] = dict(
                reference=loss_ref, ours=loss_ours, ours_cp=loss_cp)
            log(f'first-step loss: reference {loss_ref:.6f}, ours '
                f'{loss_ours:.6f}, ours with with_cp {loss_cp:.6f}')
            if abs(loss_cp - loss_ours) > 1e-4 * abs(loss_ours):
                raise RuntimeError('with_cp changed the first-step loss: '
                                   f'{loss_cp} vs {loss_ours}')
        fns = dict(
            reference=lambda: reference.train_step(ref, ref_opt, images,
                                                   target, device),
            ours=lambda: ours.train_step(model, wrapper, data))
        if b == s['batches'][0]:
            fns['ours_cp'] = lambda: ours.train_step(model_cp, wrapper_cp,
                                                     data)
        log(f'train step, batch {b}: {s["warmup"]} warm-up + '
            f'{s["train_reps"][b]} interleaved repetitions of '
            f'{", ".join(fns)} ...')
        t = interleaved(fns, s['train_reps'].get(b, 1), s['warmup'], device)
        step_rows[b] = {k: dict(median_s=statistics.median(v), all_s=v)
                        for k, v in t.items()}
        log('  ' + ', '.join(f'{k} {v["median_s"]:.3f} s'
                             for k, v in step_rows[b].items()))
    results['train_step'] = step_rows

    # inference: batch 1, eval mode, our test_step vs the bare forward
    ref.eval()
    model.eval()
    images, _ = make_inputs(1, s['size'], seed=7)
    data = ours.test_batch(images)
    infer = {}
    for kind in ('as_is', 'flat'):
        if kind == 'flat':
            # The worst case for decoding: nearly flat maps (almost every
            # pixel above 5 % of the peak, so ERE takes its dense path).
            # Scaling the final layer (in both networks) flattens them
            # without changing the cost of the forward pass.
            with torch.no_grad():
                for p in (*ref.segmentation_head.parameters(),
                          *model.head.final_layer.parameters()):
                    p.mul_(FLAT_SCALE)
        with torch.no_grad():
            probs = model.head.probabilities(
                model.head.forward(model.extract_feat(
                    model.data_preprocessor(data, False)['inputs'])))
            peak = probs.flatten(-2).amax(-1, keepdim=True)
            kept = (probs.flatten(-2) >= 0.05 * peak).float().mean()
            info = dict(mode_probability_median=float(peak.median()),
                        kept_fraction=float(kept))
        reps = s['infer_reps'] if kind == 'as_is' else s['infer_flat_reps']
        log(f'inference ({kind} maps: median mode probability '
            f'{info["mode_probability_median"]:.2g}, '
            f'{100 * info["kept_fraction"]:.2g} % of pixels above 5 % of '
            f'the peak): {reps} repetitions per side ...')
        t = interleaved(
            dict(reference=lambda: reference.forward(ref, images, device),
                 ours=lambda: ours.predict(model, data)),
            reps, 1, device)
        info.update({k: dict(median_s=statistics.median(v), all_s=v)
                     for k, v in t.items()})
        infer[kind] = info
        log(f'  bare forward {info["reference"]["median_s"]:.3f} s, ours '
            f'{info["ours"]["median_s"]:.3f} s')
    results['inference'] = infer
    del ref, model, ref_opt, wrapper
    if device == 'cuda':
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------
# peak memory: one process per side
# ---------------------------------------------------------------------------
def _status_mb(key):
    """A /proc/self/status size in MB (VmRSS: now; VmHWM: the peak)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1]) / 1024
    return float('nan')


def _peak_rss_mb():
    """This process's peak RSS. VmHWM, not getrusage's ru_maxrss: Linux
    carries ru_maxrss across fork + exec, so a child started from a big
    parent would report the parent's size."""
    peak = _status_mb('VmHWM')
    if math.isnan(peak):  # no /proc: ru_maxrss (KB on Linux)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return peak


def _saved_for_backward(fn, exclude_ptrs):
    """MB of distinct storages autograd saves while ``fn`` runs (parameters
    excluded); returns (fn's output, MB)."""
    import torch
    seen = {}

    def pack(t):
        try:
            st = t.untyped_storage()
            ptr = st.data_ptr()
            if ptr not in exclude_ptrs:
                seen[ptr] = st.nbytes()
        except (RuntimeError, NotImplementedError):
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(seen.values()) / 2**20


def worker_memory(side, batches, size, steps, device, quick):
    """Runs in its own process: peak RSS (and GPU memory) of ``steps``
    training steps of one side at each batch size (increasing), then the
    saved-for-backward breakdown at the first batch size."""
    import torch
    w, h = size
    if side == 'reference':
        import reference
        runtime_mb = _status_mb('VmRSS')
        torch.manual_seed(0)
        model = reference.build_reference(NUM_KEYPOINTS).to(device).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    else:  # ours, or ours in the memory mode (ours_cp)
        import ours
        cfg = ours.load_config(size,
                               with_cp=side == 'ours_cp')
        # the interpreter and libraries, before any tensor of the model:
        # what a GPU's allocated memory would not count either
        runtime_mb = _status_mb('VmRSS')
        model, wrapper = ours.build_ours(cfg, device)
    out = []
    for b in batches:
        images, index = make_inputs(b, size, seed=b)
        if side == 'reference':
            target = reference.dense_one_hot(index, h, w)

            def step():
                reference.train_step(model, opt, images, target, device)
        else:
            data = ours.train_batch(images, index)

            def step():
                ours.train_step(model, wrapper, data)

        row = dict(batch=b, rss_runtime_mb=runtime_mb,
                   rss_before_mb=_status_mb('VmRSS'))
        if device == 'cuda':
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        for _ in range(steps):
            step()
        sync(device)
        row['peak_rss_mb'] = _peak_rss_mb()
        if device == 'cuda':
            row['peak_gpu_alloc_mb'] = torch.cuda.max_memory_allocated(
            ) / 2**20
        out.append(row)

    # breakdown at the first batch size (after the peaks were read)
    b = batches[0]
    images, index = make_inputs(b, size, seed=b)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    if side == 'reference':
        target = reference.dense_one_hot(index, h, w).to(device)
        x = reference.preprocess(images, device)
        logits, net_mb = _saved_for_backward(lambda: model(x), params)
        loss, loss_mb = _saved_for_backward(
            lambda: reference.nll_across_batch(
                reference.two_d_softmax(logits), target), params)
    else:
        data = model.data_preprocessor(ours.train_batch(images, index), True)
        logits, net_mb = _saved_for_backward(
            lambda: model.head.forward(model.extract_feat(data['inputs'])),
            params)
        weights = torch.ones(b, NUM_KEYPOINTS, device=device)
        loss, loss_mb = _saved_for_backward(
            lambda: model.head.loss_module(logits, index.to(device),
                                           weights), params)
    out[0]['saved_network_mb'] = net_mb
    out[0]['saved_loss_mb'] = loss_mb
    return out


#: the memory worker's sides: ours_cp is ours with ``with_cp=True``
MEMORY_SIDES = ('reference', 'ours', 'ours_cp')


def bench_memory(s, device, quick, results):
    """A process per side: a process's peak cannot be reset. Batch sizes
    run in increasing order in the same process (peak so far)."""
    rows = {}
    for side in MEMORY_SIDES:
        log(f'peak memory, {side}: own process, batches '
            f'{list(s["batches"])}, {s["mem_steps"]} step(s) each ...')
        cmd = [
            sys.executable, osp.abspath(__file__), '--worker-memory', side,
            '--device', device
        ] + (['--quick'] if quick else []) + [
            '--size', *map(str, s['size']), '--batches',
            *map(str, s['batches']), '--mem-steps', str(s['mem_steps'])]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-4000:])
            raise RuntimeError(f'memory worker ({side}) failed')
        rows[side] = json.loads(proc.stdout.strip().splitlines()[-1])
        for r in rows[side]:
            log(f'  batch {r["batch"]}: peak RSS {r["peak_rss_mb"]:.0f} MB '
                f'(before steps {r["rss_before_mb"]:.0f} MB)')
    results['memory'] = rows


# ---------------------------------------------------------------------------
# ERE against a per-pixel Python loop
# ---------------------------------------------------------------------------
def peaked_maps(num, size, seed):
    """(num, K, H, W) probability maps like a trained network's: an
    anisotropic, rotated bump per landmark (long along a contour, narrow
    across it) on a noisy background."""
    import torch

    from mmchh.codecs.utils import softmax_2d
    w, h = size
    g = torch.Generator().manual_seed(seed)
    n = num * NUM_KEYPOINTS
    ys = torch.arange(h, dtype=torch.float32)[None, :, None]
    xs = torch.arange(w, dtype=torch.float32)[None, None, :]
    cx = (torch.rand(n, generator=g) * w)[:, None, None]
    cy = (torch.rand(n, generator=g) * h)[:, None, None]
    angle = (torch.rand(n, generator=g) * math.pi)[:, None, None]
    # about 5-13 px along and 2-4 px across at 640 x 800 (0.3 mm/px): ERE
    # of a few mm, as the paper reports on ISBI 2015
    along = (w / 128 + torch.rand(n, generator=g) * w / 80)[:, None, None]
    across = along / 3
    u = (xs - cx) * angle.cos() + (ys - cy) * angle.sin()
    v = (ys - cy) * angle.cos() - (xs - cx) * angle.sin()
    logits = -0.5 * ((u / along)**2 + (v / across)**2)
    logits = logits + 0.5 * torch.randn(n, h, w, generator=g)
    return softmax_2d(logits).view(num, NUM_KEYPOINTS, h, w)


def ere_python_loop(prob_map, threshold=0.05, sx=1.0, sy=1.0):
    """The ERE of one map, pixel by pixel in pure Python (the obvious
    implementation of the paper's definition)."""
    rows = prob_map.tolist()
    peak, mx, my = -1.0, 0, 0
    for y, row in enumerate(rows):
        for x, v in enumerate(row):
            if v > peak:
                peak, mx, my = v, x, y
    cut = threshold * peak
    mass = acc = 0.0
    for y, row in enumerate(rows):
        dy2 = ((y - my) * sy)**2
        for x, v in enumerate(row):
            if v >= cut and v > 0:
                mass += v
                acc += v * math.sqrt(((x - mx) * sx)**2 + dy2)
    return acc / mass if mass > 0 else 0.0


def bench_ere(s, device, results):
    import torch

    from mmchh.codecs.utils import expected_radial_error
    n_img, n_loop = s['ere_images'], s['loop_maps']
    pixel = (0.3, 0.3)
    pool = [
        peaked_maps(1, s['size'], seed=i).to(device)
        for i in range(s['ere_pool'])
    ]
    log(f'ERE: {n_img} x {NUM_KEYPOINTS} maps of {s["size"][0]} x '
        f'{s["size"][1]} (a pool of {len(pool)} images cycled), against the '
        f'Python loop on {n_loop} map(s) ...')
    # Each image's ERE is timed with torch's default thread count and with
    # one thread (as the loop runs), alternately. On a CPU shared with other
    # jobs every multi-threaded kernel can wait a scheduler time slice for
    # its second thread, which dominates small kernels like these.
    threads = torch.get_num_threads()
    variants = [threads] + ([1] if device == 'cpu' and threads > 1 else [])
    ere_t = {v: [] for v in variants}
    loop_t, check = [], []
    per_round = math.ceil(n_img / n_loop)
    done = 0
    for r in range(n_loop):
        todo = min(per_round, n_img - done)
        for i in range(todo):
            maps = pool[(done + i) % len(pool)]
            for v in (variants if i % 2 == 0 else variants[::-1]):
                torch.set_num_threads(v)
                sync(device)
                t = time.perf_counter()
                expected_radial_error(maps, pixel_size=pixel)
                sync(device)
                ere_t[v].append(time.perf_counter() - t)
            torch.set_num_threads(threads)
        done += todo
        k = r % NUM_KEYPOINTS
        m = pool[r % len(pool)][0, k].cpu()
        t = time.perf_counter()
        slow = ere_python_loop(m, sx=pixel[0], sy=pixel[1])
        loop_t.append(time.perf_counter() - t)
        fast = float(expected_radial_error(m, pixel_size=pixel))
        check.append(abs(fast - slow) / max(abs(slow), 1e-12))
    total_maps = n_img * NUM_KEYPOINTS
    res = dict(
        maps=total_maps,
        threads=threads,
        ours_total_s=sum(ere_t[threads]),
        ours_per_image_median_s=statistics.median(ere_t[threads]),
        ours_1thread_total_s=sum(ere_t[1]) if 1 in ere_t else None,
        loop_maps_timed=n_loop,
        loop_per_map_median_s=statistics.median(loop_t),
        loop_total_s_extrapolated=statistics.median(loop_t) * total_maps,
        max_rel_diff_loop_vs_ours=max(check))
    results['ere'] = res
    log(f'  ours {res["ours_total_s"]:.3f} s for {total_maps} maps '
        f'({res["ours_1thread_total_s"] or float("nan"):.3f} s with 1 '
        f'thread); loop '
        f'{res["loop_per_map_median_s"]:.3f} s per map -> '
        f'{res["loop_total_s_extrapolated"]:.0f} s')
    if res['max_rel_diff_loop_vs_ours'] > 1e-4:
        raise RuntimeError('ERE: the loop and expected_radial_error disagree '
                           f'({res["max_rel_diff_loop_vs_ours"]:.2g})')
    del pool
    torch.cuda.empty_cache() if device == 'cuda' else None


# ---------------------------------------------------------------------------
# data pipeline
# ---------------------------------------------------------------------------
def make_dataset(s, quick, workdir):
    """Synthetic ISBI-layout images at the benchmark size, converted as for
    training, and the config's training dataset (its real pipeline) on
    them."""
    from mmchh.datasets.converters import convert_isbi
    from mmchh.testing.synthetic_ceph import make_synthetic_ceph
    from mmpose.registry import DATASETS

    import ours
    raw, coco = osp.join(workdir, 'raw'), osp.join(workdir, 'coco')
    n = s['loader_source_images']
    info = make_synthetic_ceph(raw, num_train=n + 2, num_test1=1,
                               num_test2=1, image_size=tuple(s['size']),
                               progress=False)
    convert_isbi(raw, coco, num_val=1, num_calib=1,
                 spacing=info['spacing_mm'], progress=False)
    cfg = ours.load_config(s['size'])
    ds_cfg = dict(cfg.train_dataloader.dataset)
    ds_cfg.update(data_root=coco + '/', ann_file='train.json')
    return cfg, DATASETS.build(ds_cfg)


def make_loader(dataset, num, batch, workers, shuffle_seed=0):
    """A DataLoader over ``num`` samples (the dataset cycled), batch as in
    the config, collated as MMEngine does."""
    import torch
    from mmengine.dataset import pseudo_collate
    g = torch.Generator().manual_seed(shuffle_seed)
    order = [int(i) % len(dataset)
             for i in torch.randperm(max(num, len(dataset)), generator=g)]
    order = (order * (num // len(order) + 1))[:num]
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch, sampler=order, num_workers=workers,
        collate_fn=pseudo_collate, persistent_workers=False,
        multiprocessing_context='fork' if workers else None)


def bench_loader(s, quick, results, workdir):
    import cv2
    cv2.setNumThreads(0)  # as MMEngine's runner (env_cfg.mp_cfg)
    cfg, dataset = make_dataset(s, quick, workdir)
    batch = cfg.train_dataloader.batch_size
    rows = {}
    for workers in s['loader_workers']:
        log(f'data pipeline: {s["loader_images"]} images, batch {batch}, '
            f'{workers} worker(s) ...')
        loader = make_loader(dataset, s['loader_images'], batch, workers)
        it = iter(loader)
        first = next(it)  # worker start-up excluded
        t = time.perf_counter()
        count = 0
        for data in it:
            count += len(data['inputs'])
        dt = time.perf_counter() - t
        rows[workers] = dict(images=count, seconds=dt,
                             images_per_s=count / dt if dt > 0 else 0.0)
        del it, loader, first
        log(f'  {rows[workers]["images_per_s"]:.1f} images/s')
    best = max(rows, key=lambda w: rows[w]['images_per_s'])
    results['loader'] = dict(batch=batch, by_workers=rows, best_workers=best)
    return cfg, dataset


# ---------------------------------------------------------------------------
# GPU: one epoch at ISBI scale
# ---------------------------------------------------------------------------
def bench_epoch_gpu(s, quick, results, cfg, dataset):
    """150 images of 640 x 800, batch 4, the real pipeline and runner step,
    AMP off and on: seconds per epoch and peak allocated GPU memory."""
    import torch

    import ours
    workers = results['loader']['best_workers']
    rows = {}
    for amp in (False, True):
        log(f'ISBI-scale epoch on the GPU, AMP {"on" if amp else "off"} ...')
        torch.manual_seed(0)
        model, wrapper = ours.build_ours(cfg, 'cuda', amp=amp)
        # warm-up (cuDNN algorithm choice, allocator) on one batch
        loader = make_loader(dataset, s['epoch_batch'], s['epoch_batch'], 0)
        for data in loader:
            model.train_step(data, wrapper)
        loader = make_loader(dataset, s['epoch_images'], s['epoch_batch'],
                             workers, shuffle_seed=1)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        for data in loader:
            model.train_step(data, wrapper)
        torch.cuda.synchronize()
        rows['amp' if amp else 'fp32'] = dict(
            epoch_s=time.perf_counter() - t,
            peak_gpu_alloc_mb=torch.cuda.max_memory_allocated() / 2**20,
            images=s['epoch_images'], batch=s['epoch_batch'],
            workers=workers)
        del model, wrapper
        torch.cuda.empty_cache()
        log(f'  {rows["amp" if amp else "fp32"]["epoch_s"]:.1f} s')
    results['epoch_gpu'] = rows


# ---------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------
NOT_MEASURED = 'not measured (no GPU)'


def _fmt(x, nd=2):
    if x is None:
        return '-'
    if isinstance(x, str):
        return x
    if x != 0 and (abs(x) >= 1000 or abs(x) < 0.01):
        return f'{x:.3g}' if abs(x) < 1000 else f'{x:.0f}'
    return f'{x:.{nd}f}'


def training_memory_mb(row):
    """Peak RSS above the runtime (interpreter and libraries, read before
    the model was built) of a memory worker's row: the model, gradients,
    optimizer state, data and activations -- what a GPU's
    ``max_memory_allocated`` counts. None for rows recorded before the
    runtime's RSS was."""
    if row.get('rss_runtime_mb') is None:
        return None
    return row['peak_rss_mb'] - row['rss_runtime_mb']


def _memory_mode_rows(results, add):
    """The memory mode (``with_cp``): peak memory and step time of ours
    with it against the reference."""
    mem, gpu = results['memory'], results['device'] == 'cuda'
    for i, b in enumerate(results['batches']):
        ref, our = mem['reference'][i], mem['ours_cp'][i]
        add(f'memory mode (with_cp): peak CPU RSS, batch {b} (MB, whole '
            'process)', ref['peak_rss_mb'], our['peak_rss_mb'],
            our['peak_rss_mb'] / ref['peak_rss_mb'], 'info', None)
        ref_mb, our_mb = training_memory_mb(ref), training_memory_mb(our)
        name = (f'memory mode (with_cp): peak CPU memory of training, batch '
                f'{b} (MB, peak RSS above the runtime)')
        if ref_mb is None or our_mb is None:
            add(name, 'not recorded', 'not recorded', None, '<= 0.6', None)
        else:
            add(name, ref_mb, our_mb, our_mb / ref_mb, '<= 0.6',
                our_mb / ref_mb <= 0.6)
        if gpu:
            add(f'memory mode (with_cp): peak GPU memory allocated, batch '
                f'{b} (MB)', ref['peak_gpu_alloc_mb'],
                our['peak_gpu_alloc_mb'],
                our['peak_gpu_alloc_mb'] / ref['peak_gpu_alloc_mb'],
                '<= 0.6',
                our['peak_gpu_alloc_mb'] / ref['peak_gpu_alloc_mb'] <= 0.6)
    b = results['batches'][0]
    r = results['train_step'][b]
    ref, our = r['reference']['median_s'], r['ours_cp']['median_s']
    add(f'memory mode (with_cp): training step, batch {b} (s, median of '
        f'{len(r["ours_cp"]["all_s"])}, {results["device_name"]})', ref, our,
        our / ref, '<= 1.35', our / ref <= 1.35)


def table_rows(results):
    """(measurement, reference, ours, ratio, target, met) per row."""
    rows = []
    gpu = results['device'] == 'cuda'

    def add(name, ref, our, ratio, target, ok):
        met = '-' if ok is None else ('yes' if ok else 'NO')
        rows.append((name, _fmt(ref), _fmt(our), _fmt(ratio, 3), target,
                     met))

    fl = results['first_step_loss']
    add('first-step loss, same weights and input (check)', fl['reference'],
        fl['ours'], fl['ours'] / fl['reference'], '= 1', abs(
            fl['ours'] / fl['reference'] - 1) < 1e-3)
    dev = results['device_name']
    for b, r in results['train_step'].items():
        ref, our = r['reference']['median_s'], r['ours']['median_s']
        add(f'training step, batch {b} (s, median of '
            f'{len(r["ours"]["all_s"])}, {dev})', ref, our, our / ref,
            '<= 0.85', our / ref <= 0.85)
    mem = results['memory']
    for i, b in enumerate(results['batches']):
        ref, our = mem['reference'][i], mem['ours'][i]
        add(f'peak CPU RSS, batch {b} (MB, whole process)',
            ref['peak_rss_mb'], our['peak_rss_mb'],
            # the network's activations dominate (the breakdown rows): the
            # memory target is the memory mode's (with_cp) below
            our['peak_rss_mb'] / ref['peak_rss_mb'], 'info', None)
    for i, b in enumerate(results['batches']):
        ref, our = mem['reference'][i], mem['ours'][i]
        if gpu:
            add(f'peak GPU memory allocated, batch {b} (MB)',
                ref['peak_gpu_alloc_mb'], our['peak_gpu_alloc_mb'],
                our['peak_gpu_alloc_mb'] / ref['peak_gpu_alloc_mb'],
                'info', None)
        else:
            add(f'peak GPU memory allocated, batch {b} (MB)', NOT_MEASURED,
                NOT_MEASURED, None, 'info', None)
    _memory_mode_rows(results, add)
    b0 = results['batches'][0]
    ref, our = mem['reference'][0], mem['ours'][0]
    ref_base, our_base = ref['rss_before_mb'], our['rss_before_mb']
    add(f'  RSS before the first step (runtime + model), batch {b0} (MB)',
        ref_base, our_base, our_base / ref_base, 'info', None)
    add(f'  saved for backward by the network, batch {b0} (MB)',
        ref['saved_network_mb'], our['saved_network_mb'],
        our['saved_network_mb'] / ref['saved_network_mb'], 'info', None)
    add(f'  saved for backward by the loss path, batch {b0} (MB)',
        ref['saved_loss_mb'], our['saved_loss_mb'],
        our['saved_loss_mb'] / max(ref['saved_loss_mb'], 1e-9), 'info',
        None)
    for kind in ('as_is', 'flat'):
        r = results['inference'][kind]
        ref, our = r['reference']['median_s'], r['ours']['median_s']
        label = (f'{100 * r["kept_fraction"]:.2g} % of pixels above 5 % of '
                 'the peak')
        if kind == 'flat':
            label = 'flattened maps (worst case), ' + label
        target = '<= 1.1' if kind == 'as_is' else 'info'
        add(f'inference, batch 1 ({label}): bare forward vs ours with '
            f'softmax + decode + ERE (s, median of '
            f'{len(r["ours"]["all_s"])})', ref, our, our / ref, target,
            our / ref <= 1.1 if kind == 'as_is' else None)
    e = results['ere']
    loop = e['loop_total_s_extrapolated']
    variants = [(e['threads'], e['ours_total_s'])]
    if e.get('ours_1thread_total_s') is not None:
        variants.append((1, e['ours_1thread_total_s']))
    for th, ours_s in variants:
        add(f'ERE of {e["maps"]} maps (s): Python loop (1 thread, '
            f'extrapolated from {e["loop_maps_timed"]} map(s)) vs ours '
            f'({th} torch thread{"s" if th > 1 else ""})', loop, ours_s,
            ours_s / loop, '<= 0.01 (>= 100x faster)', ours_s / loop <= 0.01)
    ld = results['loader']
    best = ld['by_workers'][ld['best_workers']]['images_per_s']
    batches = list(results['train_step'])
    b_last = batches[-1]
    step = results['train_step'][b_last]['ours']['median_s']
    consume = b_last / step
    add(f'data pipeline (img/s, {ld["best_workers"]} workers, best of '
        f'{sorted(ld["by_workers"])}) vs images/s our training step '
        f'consumes (batch {b_last}, {dev})', consume, best, best / consume,
        '>= 1 (keeps up)', best >= consume)
    if gpu and 'epoch_gpu' in results:
        for key in ('fp32', 'amp'):
            r = results['epoch_gpu'][key]
            add(f'ISBI-scale epoch ({r["images"]} images, batch '
                f'{r["batch"]}), AMP {"on" if key == "amp" else "off"}: '
                's / peak GPU MB', r['epoch_s'], r['peak_gpu_alloc_mb'],
                None, 'info', None)
    else:
        for key in ('off', 'on'):
            add(f'ISBI-scale epoch (150 images, batch 4), AMP {key}',
                NOT_MEASURED, NOT_MEASURED, None, 'info', None)
    return rows


def format_table(results):
    head = ('measurement', 'reference', 'ours', 'ours / reference',
            'target', 'met')
    lines = ['| ' + ' | '.join(head) + ' |',
             '|' + '---|' * len(head)]
    for r in table_rows(results):
        lines.append('| ' + ' | '.join(r) + ' |')
    return '\n'.join(lines)


def machine_info(device):
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    info = dict(cpu=cpu, cores=os.cpu_count(), torch=torch.__version__,
                torch_threads=torch.get_num_threads(),
                python=platform.python_version())
    if device == 'cuda':
        info['gpu'] = torch.cuda.get_device_name()
    return info


def with_int_keys(value):
    """A results dict read back from JSON, with its integer keys (batch
    sizes, worker counts) integers again, as the run produced them."""
    if isinstance(value, dict):
        return {(int(k) if isinstance(k, str) and k.isdigit() else k):
                with_int_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [with_int_keys(v) for v in value]
    return value


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true',
                        help='tiny inputs, 1-2 repetitions (smoke test)')
    parser.add_argument('--json', help='also write all results here')
    parser.add_argument('--device', choices=['cpu', 'cuda'],
                        help='default: cuda when available, else cpu')
    parser.add_argument(
        '--worker-memory', choices=MEMORY_SIDES,
        help='only measure the peak memory of one side (ours_cp: ours with '
        'with_cp=True) in this process and print it as JSON')
    parser.add_argument('--size', type=int, nargs=2, metavar=('W', 'H'),
                        help='input size (divisible by 32; default 640 800, '
                        'with --quick 64 96)')
    parser.add_argument('--batches', type=int, nargs='+',
                        help='batch sizes (default 1 2)')
    parser.add_argument('--mem-steps', type=int,
                        help='training steps per batch size in the memory '
                        'worker (default 2, with --quick 1)')
    parser.add_argument('--table-from', metavar='JSON',
                        help='print the table of a run written with --json '
                        '(targets as this script states them) and exit')
    args = parser.parse_args()
    if args.table_from:
        with open(args.table_from) as f:
            print(format_table(with_int_keys(json.load(f))))
        return
    import torch
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    s = dict(QUICK if args.quick else FULL)
    for key in ('size', 'batches', 'mem_steps'):
        if getattr(args, key) is not None:
            s[key] = getattr(args, key)
    if args.worker_memory:
        print(json.dumps(worker_memory(args.worker_memory, s['batches'],
                                       s['size'], s['mem_steps'], device,
                                       args.quick)))
        return

    t0 = time.time()
    results = dict(mode='quick' if args.quick else 'full', device=device,
                   size=list(s['size']), batches=list(s['batches']),
                   machine=machine_info(device))
    results['device_name'] = results['machine'].get('gpu', 'CPU')
    log(f'{results["mode"]} run on {results["device_name"]} '
        f'({results["machine"]["cpu"]}, {results["machine"]["cores"]} '
        f'cores, torch {results["machine"]["torch"]}), input '
        f'{s["size"][0]} x {s["size"][1]}')
    bench_train(s, device, args.quick, results)
    bench_memory(s, device, args.quick, results)
    bench_ere(s, device, results)
    with tempfile.TemporaryDirectory(prefix='mmchh_bench_') as tmp:
        cfg, dataset = bench_loader(s, args.quick, results, tmp)
        if device == 'cuda':
            bench_epoch_gpu(s, args.quick, results, cfg, dataset)
    results['wall_s'] = time.time() - t0
    results['table'] = [list(r) for r in table_rows(results)]
    table = format_table(results)
    log(f'done in {results["wall_s"]:.0f} s')
    print(table)
    if args.json:
        # strict JSON: a row not measured is null, never a bare NaN
        from mmchh.utils.io import write_json
        write_json(args.json, results)


if __name__ == '__main__':
    main()
