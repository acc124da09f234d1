"""Inference at batch 1 in eval mode: our ``test_step`` (softmax, decode,
ERE) against the reference's bare forward, on the maps the network gives
and on flattened ones (ERE's dense path, the worst case)."""
from .paired_models import make_inputs
from .timing import interleaved, log, with_medians

#: Final-layer scale that flattens the maps (ERE's dense fallback, the
#: worst case of inference).
FLAT_SCALE = 0.01


def time_inference(s, device, ref, model, results):
    """Times both sides' inference (``results['inference']``); leaves both
    models in eval mode with their final layers scaled by
    :data:`FLAT_SCALE`."""
    import torch

    import ours
    import reference

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
        info.update(with_medians(t))
        infer[kind] = info
        log(f'  bare forward {info["reference"]["median_s"]:.3f} s, ours '
            f'{info["ours"]["median_s"]:.3f} s')
    results['inference'] = infer
