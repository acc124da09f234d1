"""The training step of both sides, interleaved in one process, with the
first step's losses compared (same weights, same input); then the
inference of the same models (:mod:`.inference_time`)."""
from .inference_time import time_inference
from .paired_models import build_pair, make_inputs
from .timing import interleaved, log, with_medians


def bench_train(s, device, quick, results):
    """Training step of the reference, ours and ours in the memory mode at
    each batch size of ``s``, then inference (``results['train_step']``,
    ``['first_step_loss']``, ``['inference']``)."""
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
        step_rows[b] = with_medians(t)
        log('  ' + ', '.join(f'{k} {v["median_s"]:.3f} s'
                             for k, v in step_rows[b].items()))
    results['train_step'] = step_rows

    time_inference(s, device, ref, model, results)
    del ref, model, ref_opt, wrapper
    if device == 'cuda':
        torch.cuda.empty_cache()
