"""Mixed precision (``--amp``) and channels_last against float32, every
side stepped in turn (:func:`.timing.interleaved`) and read as the median of
per-pair ratios with their range (:func:`.timing.paired_ratio`).

Sides of the training step (the paper's network, same weights, same
input): the bare-PyTorch reference (float32), ours in float32, ours in
float32 with channels_last weights and input, ours with the optimizer
wrapper ``tools/train.py --amp`` selects (bf16 autocast on a CPU, fp16 on
CUDA), the same with channels_last, and the memory mode (``with_cp``) with
``--amp``. Prediction, batch 1 in eval mode: the reference's bare float32
forward, our ``test_step`` (softmax, decode, ERE) in float32 and with
``enable_predict_amp`` (what ``--amp`` and ``init_landmark_model(...,
amp=True)`` do).
"""
from .paired_models import NUM_KEYPOINTS, make_inputs
from .timing import interleaved, log, paired_ratio

#: (name, numerator, denominator, target ratio or None) of the paired
#: rows; the training step's first, then prediction's
TRAIN_PAIRS = (
    ('fp32 training step: ours / bare-PyTorch reference', 'ours',
     'reference', 0.85),
    ('--amp training step: ours / fp32 reference', 'ours_amp', 'reference',
     0.45),
    ('--amp training step: ours / ours fp32', 'ours_amp', 'ours', None),
    ('fp32 + channels_last training step: ours / ours fp32', 'ours_cl',
     'ours', None),
    ('--amp + channels_last training step: ours / fp32 reference',
     'ours_amp_cl', 'reference', 0.45),
    ('memory mode (with_cp) with --amp, training step: ours / fp32 '
     'reference', 'ours_cp_amp', 'reference', None),
)
PREDICT_PAIRS = (
    ('--amp predict (softmax + decode + ERE): ours / fp32 bare forward',
     'ours_amp', 'reference', 0.45),
    ('fp32 predict (softmax + decode + ERE): ours / fp32 bare forward',
     'ours', 'reference', None),
)


def _channels_last(model, data):
    """The model's weights and the batch's images as channels_last."""
    import torch
    model.to(memory_format=torch.channels_last)
    return dict(data, inputs=[x.contiguous(memory_format=torch.channels_last)
                              if x.ndim == 4 else x for x in data['inputs']])


def _train_sides(s, device):
    """{side: step callable} of the training step, all with the
    reference's weights."""
    import torch

    import ours
    import reference
    torch.manual_seed(0)
    ref = reference.build_reference(NUM_KEYPOINTS).to(device).train()
    ref_opt = torch.optim.Adam(ref.parameters(), lr=1e-3)
    w, h = s['size']
    images, index = make_inputs(s['amp_batch'], s['size'], seed=3)
    target = reference.dense_one_hot(index, h, w)
    data = ours.train_batch(images, index)
    sides = dict(reference=lambda: reference.train_step(
        ref, ref_opt, images, target, device))
    for name, amp, cl, cp in (('ours', False, False, False),
                              ('ours_cl', False, True, False),
                              ('ours_amp', True, False, False),
                              ('ours_amp_cl', True, True, False),
                              ('ours_cp_amp', True, False, True)):
        model, wrapper = ours.build_ours(
            ours.load_config(s['size'], with_cp=cp), device, amp=amp)
        ours.copy_weights(ref, model)
        batch = _channels_last(model, data) if cl else data
        sides[name] = (lambda m=model, o=wrapper, d=batch:
                       ours.train_step(m, o, d))
    return sides, ref


def _predict_sides(s, device, ref):
    """{side: callable} of prediction at batch 1 in eval mode."""
    import ours
    import reference
    from mmchh.engine.amp import enable_predict_amp
    images, _ = make_inputs(1, s['size'], seed=7)
    data = ours.test_batch(images)
    ref.eval()
    sides = dict(reference=lambda: reference.forward(ref, images, device))
    for name, amp in (('ours', False), ('ours_amp', True)):
        model, _ = ours.build_ours(ours.load_config(s['size']), device)
        ours.copy_weights(ref, model)
        model.eval()
        if amp:
            enable_predict_amp(model)
        sides[name] = lambda m=model: ours.predict(m, data)
    return sides


def _rows(times, pairs):
    out = []
    for name, num, den, target in pairs:
        r = paired_ratio(times, num, den)
        r.update(name=name, num=num, den=den, target=target,
                 met=None if target is None else r['median'] <= target)
        out.append(r)
        log(f'  {name}: median {r["median"]:.3f} '
            f'[{r["min"]:.3f}, {r["max"]:.3f}] over {r["pairs"]} pairs')
    return out


def bench_amp(s, device, results):
    """The paired rows of mixed precision (``results['amp']``): per side
    its times, per row the median per-pair ratio, its range and target;
    the CPU's native bf16 flags (none: emulated, the rows say so)."""
    from mmchh.engine.amp import amp_summary, native_bf16_flags
    info = dict(device=device, summary=amp_summary(device),
                native_bf16=list(native_bf16_flags()) if device == 'cpu'
                else None, size=list(s['size']), batch=s['amp_batch'],
                warmup=s['amp_warmup'], pairs=s['amp_reps'])
    log(f'--amp: {info["summary"]}')
    sides, ref = _train_sides(s, device)
    log(f'training step, batch {s["amp_batch"]}: {s["amp_warmup"]} warm-up '
        f'+ {s["amp_reps"]} alternated steps of {", ".join(sides)} ...')
    times = interleaved(sides, s['amp_reps'], s['amp_warmup'], device)
    info['train_s'] = times
    info['train'] = _rows(times, TRAIN_PAIRS)
    del sides
    sides = _predict_sides(s, device, ref)
    log(f'predict, batch 1: {s["amp_warmup"]} warm-up + {s["amp_reps"]} '
        f'alternated calls of {", ".join(sides)} ...')
    times = interleaved(sides, s['amp_reps'], s['amp_warmup'], device)
    info['predict_s'] = times
    info['predict'] = _rows(times, PREDICT_PAIRS)
    results['amp'] = info
