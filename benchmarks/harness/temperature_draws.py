"""The draws of ``benchmarks/calibration_harm.py``: the pool's logit
summaries streamed once through the model, a calibration draw's test NLL
change under both temperature rules, their summary over the seeds and its
Markdown table."""
import os.path as osp
import statistics
import sys
import time

from .tables import markdown_table

#: The two regimes: the model's logits as they are, and divided by
#: temperatures fitted on a reference part of the pool (T = 1 about right).
REGIMES = ('raw', 'calibrated')


def make_pool(data_dir, num_images, seed, input_size, image_size):
    """The pool's COCO folder (written unless its test1.json exists)."""
    from mmchh.datasets.converters import convert_isbi
    from mmchh.datasets.synthetic import make_synthetic_ceph
    raw, coco = osp.join(data_dir, 'raw'), osp.join(data_dir, 'coco')
    if osp.isfile(osp.join(coco, 'test1.json')):
        return coco
    made = make_synthetic_ceph(raw, num_train=3, num_test1=num_images,
                               num_test2=1, image_size=image_size,
                               seed=seed, progress=False)
    convert_isbi(raw, coco, num_val=1, num_calib=1,
                 resize=tuple(input_size),
                 spacing=tuple(made['spacing_mm']), progress=False)
    return coco


def pool_summaries(args):
    """(LogitSummary (N, K), weights (N, K), seconds) of the pool.

    Args:
        args (Namespace): ``benchmarks/calibration_harm.py``'s options (the
            config, checkpoint, pool folder, size and seed, ``quick``).
    """
    import torch
    from mmengine.config import Config
    from mmengine.runner import Runner

    import mmchh  # noqa: F401
    from mmchh.calibration.calibrate import stream_logit_summaries
    from mmchh.calibration.temperature.logit_summary import LogitSummary
    cfg = Config.fromfile(args.config)
    input_size = cfg.get('input_size') or cfg.codec['input_size']
    coco = make_pool(args.data_dir, args.pool_size, args.pool_seed,
                     input_size, (160, 200) if args.quick else (320, 400))
    if args.quick:
        from mmpose.apis import init_model
        torch.manual_seed(0)
        model = init_model(cfg, None, device='cpu')
    else:
        from mmchh.apis import init_landmark_model
        model = init_landmark_model(cfg, args.checkpoint, device='cpu')
    model.eval()
    loader = Runner.build_dataloader(
        dict(
            batch_size=8,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(
                cfg.test_dataloader.dataset,
                data_root=osp.join(coco, ''),
                ann_file='test1.json')))
    cache = osp.join(args.data_dir, 'summaries.pt')
    key = dict(checkpoint=args.checkpoint, quick=args.quick,
               images=len(loader.dataset))
    if osp.isfile(cache):
        saved = torch.load(cache, weights_only=True)
        if saved['key'] == key:
            print(f'pool summaries from {cache}', file=sys.stderr)
            return (LogitSummary(**saved['summary']), saved['weights'],
                    saved['seconds'])
    start = time.perf_counter()
    summaries, weights = stream_logit_summaries(model, loader)
    seconds = time.perf_counter() - start
    print(f'streamed {len(loader.dataset)} images in {seconds:.0f} s',
          file=sys.stderr, flush=True)
    summary, weights = LogitSummary.cat(summaries), torch.cat(weights).double()
    torch.save(dict(key=key, summary=vars(summary), weights=weights,
                    seconds=seconds), cache)
    return summary, weights, seconds


def divided(summary, temperature):
    """The summary of the maps ``z / T`` (per landmark): bins, means and
    extremes scale by 1/T, variances by 1/T^2 (exact: the bins are
    equal-width in ``z``, hence in ``z / T``)."""
    from mmchh.calibration.temperature.logit_summary import LogitSummary
    inv = temperature.double().reciprocal()[None, :]
    return LogitSummary(
        bin_mean=summary.bin_mean * inv[..., None],
        bin_count=summary.bin_count,
        target_logit=summary.target_logit * inv,
        max_logit=summary.max_logit * inv,
        bin_var=(summary.bin_var.double() * inv[..., None]**2).float(),
        min_logit=summary.min_logit * inv)


def one_draw(summary, weights, identity_nll, calib, test, prior_std):
    """Test NLL change vs T = 1 of both rules for one calibration draw
    (``identity_nll``: the (N, K) NLL of every pool image at T = 1)."""
    import torch

    from mmchh.calibration.temperature.logit_summary import nll_from_summary
    from mmchh.calibration.temperature.fit import fit_temperatures
    from mmchh.calibration.temperature.select import select_temperatures
    cal, w_cal = summary[torch.as_tensor(calib)], weights[calib]
    part, mask = summary[torch.as_tensor(test)], weights[test] > 0
    base = float(identity_nll[test][mask].mean())

    def test_nll(t):
        return float(nll_from_summary(part, t)[mask].mean())

    current = fit_temperatures(cal, w_cal, prior_std=prior_std)
    start = time.perf_counter()
    sel = select_temperatures(cal, w_cal, prior_std=prior_std)
    seconds = time.perf_counter() - start
    change = test_nll(current) - base
    if sel.chosen == 'identity':
        safe = 0.0
    elif torch.equal(sel.temperature, current):  # the same fit, refitted
        safe = change
    else:
        safe = test_nll(sel.temperature) - base
    return dict(current=change, do_no_harm=safe, chosen=sel.chosen,
                seconds=seconds)


def summarise(draws):
    """Fractions worse, mean changes and choices over the seeds' draws."""
    n = len(draws)
    cur = [d['current'] for d in draws]
    dnh = [d['do_no_harm'] for d in draws]
    return dict(
        draws=n,
        worse_current=sum(c > 0 for c in cur) / n,
        worse_do_no_harm=sum(c > 0 for c in dnh) / n,
        mean_change_current=statistics.fmean(cur),
        mean_change_do_no_harm=statistics.fmean(dnh),
        worst_change_current=max(cur),
        worst_change_do_no_harm=max(dnh),
        chosen={
            name: sum(d['chosen'] == name for d in draws) / n
            for name in ('per_landmark', 'pooled', 'identity')
        },
        cv_seconds_mean=statistics.fmean(d['seconds'] for d in draws),
        cv_seconds_max=max(d['seconds'] for d in draws))


def format_table(result):
    """Markdown table of a result (one row per regime and n)."""
    head = ('model', 'n calib', 'test NLL worse: per-landmark',
            'test NLL worse: do-no-harm', 'mean change: per-landmark',
            'mean change: do-no-harm', 'chosen (per-landmark / pooled / '
            'T = 1)', 'CV s (mean / max)')
    rows = []
    for regime in REGIMES:
        for n, r in result['regimes'][regime].items():
            c = r['chosen']
            rows.append((
                regime, str(n), f'{r["worse_current"]:.0%}',
                f'{r["worse_do_no_harm"]:.0%}',
                f'{r["mean_change_current"]:+.4f}',
                f'{r["mean_change_do_no_harm"]:+.4f}',
                f'{c["per_landmark"]:.0%} / {c["pooled"]:.0%} / '
                f'{c["identity"]:.0%}',
                f'{r["cv_seconds_mean"]:.2f} / {r["cv_seconds_max"]:.2f}'))
    return markdown_table(head, rows)
