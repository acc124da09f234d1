"""The measurements of ``benchmarks/plausibility.py``: the demo model's
held-out maps, the head's fields on them (as predicted and with injected
confident false peaks, :mod:`mmchh.testing.false_peaks`), and the numbers
the script reports: what each flag catches and what the constrained decode
does to the landmarks it decodes."""
import os.path as osp

import numpy as np

#: The held-out splits: never used to fit the model or its thresholds.
HELD_OUT = ('test1', 'test2')


def load_maps(model, config, data_root):
    """Every held-out image's log probability maps, sample and ground truth
    (the config's test pipeline on ``data_root``'s Test1 and Test2).

    Returns:
        dict: split -> list of ``(log_probs (K, H, W), sample, gt (K, 2)
        image px, counted (K,) bool)``.
    """
    import torch
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmchh.codecs.utils import log_softmax_2d
    cfg = Config.fromfile(config)
    head = model.head
    out = {}
    for split in HELD_OUT:
        loader = Runner.build_dataloader(dict(
            batch_size=4, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(cfg.test_dataloader.dataset,
                         data_root=osp.join(data_root, ''),
                         ann_file=f'{split}.json')))
        rows = []
        with torch.no_grad():
            for batch in loader:
                data = model.data_preprocessor(batch, False)
                logits = head.forward(model.extract_feat(data['inputs']))
                log_probs = log_softmax_2d(
                    logits / head.temperature[:, None, None])
                for i, sample in enumerate(data['data_samples']):
                    gt = sample.gt_instances
                    rows.append((log_probs[i], sample,
                                 np.asarray(gt.keypoints, np.float64)[0],
                                 np.asarray(gt.keypoints_visible)[0] > 0))
        out[split] = rows
    return out


def evaluate(head, rows, log_probs=None):
    """The head's fields on ``rows`` (their own maps, or ``log_probs``).

    Returns:
        dict of (N, K) arrays: ``error`` (mm), ``constrained_error`` (mm,
        NaN where not decoded), ``ere``, ``implausible``, ``combined``
        (bool), ``counted`` (bool), ``image`` (image index).
    """
    import torch

    from mmchh.codecs.utils import HeatmapFrame
    from mmchh.evaluation.functional.radial_error import radial_errors_mm
    from mmchh.testing.false_peaks import predict_from_log_probs
    maps = torch.stack([r[0] for r in rows]) if log_probs is None \
        else log_probs
    cfg = dict(plausibility_decode=True)
    out = {k: [] for k in ('error', 'constrained_error', 'ere',
                           'implausible', 'combined', 'counted')}
    for start in range(0, len(rows), 8):
        part = rows[start:start + 8]
        preds = predict_from_log_probs(head, maps[start:start + 8],
                                       [r[1] for r in part], cfg)
        for (_, sample, gt, counted), pred in zip(part, preds):
            frame = HeatmapFrame.from_codec(head.decoder, sample.metainfo)
            spacing = np.asarray(frame.spacing)
            xy = frame.input_to_image(np.asarray(pred.keypoints,
                                                 np.float64)[0])
            out['error'].append(radial_errors_mm(xy, gt, spacing))
            out['constrained_error'].append(radial_errors_mm(
                np.asarray(pred.keypoint_constrained, np.float64)[0], gt,
                spacing))
            for key, field in (('ere', 'keypoint_ere_flagged'),
                               ('implausible', 'keypoint_implausible'),
                               ('combined', 'keypoint_flagged')):
                out[key].append(np.asarray(pred[field], bool)[0])
            out['counted'].append(counted)
    out = {k: np.stack(v) for k, v in out.items()}
    out['image'] = np.broadcast_to(np.arange(len(rows))[:, None],
                                   out['error'].shape)
    return out


def interval(iv):
    return dict(estimate=iv.estimate, low=iv.low, high=iv.high,
                level=iv.level)


def mre(values):
    values = np.asarray(values, np.float64)
    return float(values.mean()) if len(values) else None


def decode_summary(res, which, erroneous):
    """The constrained decode on the landmarks ``which`` flags implausible
    (all of them, and the correct ones), and on all correct landmarks of
    ``which`` with the constrained answer wherever there is one."""
    error, after = res['error'][which], res['constrained_error'][which]
    flagged = res['implausible'][which]
    correct = error <= erroneous
    taken = np.where(np.isfinite(after), after, error)
    return dict(
        flagged=dict(count=int(flagged.sum()),
                     mre_before=mre(error[flagged]),
                     mre_after=mre(after[flagged])),
        flagged_correct=dict(count=int((flagged & correct).sum()),
                             mre_before=mre(error[flagged & correct]),
                             mre_after=mre(after[flagged & correct])),
        correct=dict(count=int(correct.sum()), mre_before=mre(error[correct]),
                     mre_with_constrained=mre(taken[correct])))


def as_predicted(head, maps, erroneous, catastrophic):
    """Flag signals and the constrained decode on the held-out images."""
    from mmchh.evaluation.functional.flag_signals import \
        flag_signal_intervals
    rows = [r for split in HELD_OUT for r in maps[split]]
    res = evaluate(head, rows)
    counted = res['counted']
    error = res['error'][counted]
    signals = {}
    for name in ('ere', 'implausible', 'combined'):
        ivs = flag_signal_intervals(res[name][counted], error, erroneous,
                                    catastrophic, res['image'][counted])
        signals[name] = {k: interval(v) for k, v in ivs.items()}
    correct = error <= erroneous
    return dict(
        images={s: len(maps[s]) for s in HELD_OUT},
        counted=int(counted.sum()), erroneous=int((~correct).sum()),
        mre=mre(error),
        false_flags_implausible=dict(
            flagged=int(res['implausible'][counted][correct].sum()),
            correct=int(correct.sum())),
        signals=signals,
        constrained_decode=decode_summary(res, counted, erroneous))


def inject_round(maps, rows, rng, mass, distance, pixel_mm):
    """One round: a false peak on one random landmark per image."""
    from mmchh.testing.false_peaks import (draw_false_peak_shift,
                                           inject_false_peak)
    out, which = maps.clone(), np.full(len(rows), -1)
    width, height = maps.shape[-1], maps.shape[-2]
    for i, row in enumerate(rows):
        k = int(rng.choice(np.flatnonzero(row[3])))
        flat = int(maps[i, k].argmax())
        shift = draw_false_peak_shift(rng, (flat % width, flat // width),
                                      (width, height), pixel_mm[i],
                                      *distance)
        if shift is None:
            continue
        out[i, k] = inject_false_peak(maps[i, k], shift, mass)
        which[i] = k
    return out, which


def injected(head, maps, masses, rounds, distance, seed, erroneous):
    """Recall of injected confident false peaks, per mass, on Test1: in
    each of ``rounds`` rounds one random landmark per image gets a false
    peak ``distance`` = (low, high) mm away."""
    import torch

    from mmchh.codecs.utils import HeatmapFrame
    rows = maps['test1']
    clean = torch.stack([r[0] for r in rows])
    pixel_mm = [HeatmapFrame.from_codec(head.decoder, r[1].metainfo)
                .heatmap_pixel_mm() for r in rows]
    results = {}
    for mass in masses:
        # the same landmarks and shifts for every mass: paired
        rng = np.random.default_rng(seed)
        hit = {k: [] for k in ('error', 'constrained_error', 'ere',
                               'implausible', 'combined')}
        others = []
        for _ in range(rounds):
            bad, which = inject_round(clean, rows, rng, mass, distance,
                                      pixel_mm)
            res = evaluate(head, rows, bad)
            keep = np.flatnonzero(which >= 0)
            for key in hit:
                hit[key].append(res[key][keep, which[keep]])
            rest = res['counted'].copy()
            rest[keep, which[keep]] = False
            others.append({k: res[k][rest] for k in (
                'error', 'constrained_error', 'implausible')})
        hit = {k: np.concatenate(v) for k, v in hit.items()}
        rest = {k: np.concatenate([o[k] for o in others])
                for k in others[0]}
        results[f'{mass:g}'] = injected_summary(hit, rest, erroneous)
    return results


def injected_summary(hit, rest, erroneous):
    """The numbers of one mass (``hit``: the injected landmarks; ``rest``:
    the other counted landmarks of the same images)."""
    num = len(hit['error'])

    def share(mask):
        return dict(count=int(mask.sum()), of=num,
                    rate=float(mask.mean()) if num else None)

    flagged = hit['implausible']
    correct = rest['error'] <= erroneous
    taken = np.where(np.isfinite(rest['constrained_error']),
                     rest['constrained_error'], rest['error'])
    return dict(
        injected=num, mre_injected=mre(hit['error']),
        recall_implausible=share(flagged), recall_ere=share(hit['ere']),
        recall_either=share(hit['combined']),
        ere_says_sure=share(~hit['ere']),
        caught_only_by_implausible=share(flagged & ~hit['ere']),
        constrained_decode=dict(
            count=int(flagged.sum()),
            mre_before=mre(hit['error'][flagged]),
            mre_after=mre(hit['constrained_error'][flagged]),
            within_erroneous_after=int(
                (hit['constrained_error'][flagged] <= erroneous).sum())),
        other_landmarks=dict(
            correct=int(correct.sum()),
            false_flags_implausible=int(rest['implausible'][correct].sum()),
            mre_correct_before=mre(rest['error'][correct]),
            mre_correct_with_constrained=mre(taken[correct])))


def calibration_basis(head, checkpoint):
    """What the checkpoint's flags rest on (its calibration.json beside it
    where there is one)."""
    import json
    out = dict(
        plausibility_threshold_sigma=head.plausibility_threshold,
        # the float32 buffers as typed (0.02, not 0.0199999995)
        alpha=float(f'{float(head.configuration_alpha):.6g}'),
        num_scores=int(head.configuration_num_scores),
        ere_threshold=float(head.flag_threshold),
        ere_threshold_unit=head.flag_threshold_unit)
    report = osp.join(osp.dirname(checkpoint), 'calibration.json')
    if osp.isfile(report):
        with open(report) as f:
            config = json.load(f).get('configuration') or {}
        out['configuration'] = {k: config.get(k) for k in (
            'num_shapes', 'unit', 'threshold', 'num_scores', 'rank',
            'reason', 'erroneous', 'signals')}
    return out
