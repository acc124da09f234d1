"""Peak memory of training, one process per side: a process's peak cannot
be reset, so ``benchmarks/run.py --worker-memory SIDE`` runs
:func:`worker_memory` in a process of its own and prints its rows as JSON,
and :func:`bench_memory` starts one such process per side."""
import json
import subprocess
import sys

from .memory import peak_rss_mb, saved_for_backward, status_mb
from .paired_models import NUM_KEYPOINTS, make_inputs
from .timing import log, sync

#: the memory worker's sides: ours_cp is ours with ``with_cp=True``
MEMORY_SIDES = ('reference', 'ours', 'ours_cp')


def worker_memory(side, batches, size, steps, device, quick):
    """Runs in its own process: peak RSS (and GPU memory) of ``steps``
    training steps of one side at each batch size (increasing), then the
    saved-for-backward breakdown at the first batch size."""
    import torch
    w, h = size
    if side == 'reference':
        import reference
        runtime_mb = status_mb('VmRSS')
        torch.manual_seed(0)
        model = reference.build_reference(NUM_KEYPOINTS).to(device).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    else:  # ours, or ours in the memory mode (ours_cp)
        import ours
        cfg = ours.load_config(size,
                               with_cp=side == 'ours_cp')
        # the interpreter and libraries, before any tensor of the model:
        # what a GPU's allocated memory would not count either
        runtime_mb = status_mb('VmRSS')
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
                   rss_before_mb=status_mb('VmRSS'))
        if device == 'cuda':
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        for _ in range(steps):
            step()
        sync(device)
        row['peak_rss_mb'] = peak_rss_mb()
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
        logits, net_mb = saved_for_backward(lambda: model(x), params)
        loss, loss_mb = saved_for_backward(
            lambda: reference.nll_across_batch(
                reference.two_d_softmax(logits), target), params)
    else:
        data = model.data_preprocessor(ours.train_batch(images, index), True)
        logits, net_mb = saved_for_backward(
            lambda: model.head.forward(model.extract_feat(data['inputs'])),
            params)
        weights = torch.ones(b, NUM_KEYPOINTS, device=device)
        loss, loss_mb = saved_for_backward(
            lambda: model.head.loss_module(logits, index.to(device),
                                           weights), params)
    out[0]['saved_network_mb'] = net_mb
    out[0]['saved_loss_mb'] = loss_mb
    return out


def bench_memory(s, device, quick, results, script):
    """A process per side: a process's peak cannot be reset. Batch sizes
    run in increasing order in the same process (peak so far).

    Args:
        script (str): the path of ``benchmarks/run.py``, which each process
            runs with ``--worker-memory SIDE``.
    """
    rows = {}
    for side in MEMORY_SIDES:
        log(f'peak memory, {side}: own process, batches '
            f'{list(s["batches"])}, {s["mem_steps"]} step(s) each ...')
        cmd = [
            sys.executable, script, '--worker-memory', side,
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

