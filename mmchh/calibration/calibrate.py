# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Temperature scaling and the flagging threshold of a trained model.

One implementation behind both ``TemperatureScalingHook`` (after training)
and ``tools/calibrate.py`` (an existing checkpoint):

1. With the network in eval mode and every weight frozen, stream the
   calibration split through it; keep per map only a compact logit summary
   (:func:`summarize_logits`, about 33 KB per map instead of 2 MB at
   640x800), never the dense logits.
2. Fit one temperature per landmark by minimising the NLL of the
   ground-truth pixel (L-BFGS on log T). The mode never moves. Do no harm:
   the fit is kept only when cross-validation over the calibration images
   says it lowers the NLL of unseen images; else the pooled T, else T = 1
   (:mod:`.temperature_selection`).
3. With the calibrated temperatures, predict the calibration split again and
   choose the ERE threshold whose TPR for "erroneous" (radial error >
   ``erroneous_mm``) reaches ``target_tpr``, with its bootstrap interval
   over the calibration images and the counts it came from
   (:mod:`.flag_threshold_fitting`); store it in the head, unless it came
   from fewer images or erroneous landmarks than the minimums of
   :mod:`mmchh.models.heads.flag_basis` (then it does not flag, and the
   head's basis says why). Without
   a pixel ``spacing`` (COCO, hands) ERE, errors and the threshold are in
   original-image pixels (``erroneous_px``); the head stores the unit.
4. Fit split-conformal regions (per landmark and pooled thresholds on the
   calibrated maps, and the disc baseline's radii) at the head's
   ``conformal_levels`` (:mod:`.conformal_fitting`) and store them in the
   head; with the 19 ISBI landmarks also the measurement intervals' scale
   (:mod:`.measurement_interval_calibration`); the configuration model of
   the training split and its plausibility threshold
   (:mod:`.configuration_calibration`).
5. Bind the fitted state to the weights (the head's
   ``calibration_fingerprint``, see ``SoftmaxHeatmapHead.seal_calibration``),
   so a checkpoint whose weights change afterwards loads uncalibrated.
6. Save the calibrated checkpoint and a JSON / PNG report with NLL and ECE
   before and after and the conformal fit; both record the fingerprint.
"""
import contextlib
import copy
import os
import os.path as osp
from typing import Dict, Optional

import numpy as np
import torch
from mmengine.dist import (collect_results, get_world_size,
                           is_main_process)
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmchh.evaluation.functional.bootstrap import (paired_bootstrap,
                                                   paired_bootstrap_mean)
from mmchh.evaluation.functional.calibration_metrics import \
    expected_calibration_error
from mmchh.evaluation.functional.radial_error import radial_errors_mm
from mmchh.models.heads.calibration_buffers import \
    CALIBRATION_STATE_DEFAULTS
from mmchh.utils.io import write_json
from mmchh.utils.spacing import Spacing
from mmchh.visualization.calibration_plots import reliability_diagram_png
from .evaluation_pass import broadcast_from_main, changed_test_cfg
from .settings import (CalibrationError,
                                   check_calibration_settings, error_unit)
from .configuration import fit_configuration_calibration
from .conformal.fitting import (ConformalScores, collect_conformal_scores,
                                fit_conformal)
from .flagging import describe_flagging, flagging_report
from .temperature.logit_summary import LogitSummary, nll_from_summary, summarize_logits
from .conformal.interval_calibration import fit_calibration_intervals
from .conformal.measurement_intervals import jitter_note
from .temperature.select import select_temperatures


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


def _build_loader(runner, dataloader):
    if dataloader is None:
        raise CalibrationError(
            'temperature scaling needs a calibration dataloader (e.g. '
            '`calib_dataloader` in the config, on the "calib" split written '
            'by tools/convert_isbi.py); never calibrate on the test split')
    if isinstance(dataloader, dict):
        dataloader = copy.deepcopy(dataloader)
        # an empty split must reach the check below, not fail inside
        # MMEngine's serialisation (the split is small: nothing to share)
        dataloader['dataset']['serialize_data'] = False
        try:
            dataloader = runner.build_dataloader(
                dataloader, seed=runner.seed, diff_rank_seed=False)
        except FileNotFoundError as e:
            raise CalibrationError(
                f'cannot load the calibration split: {e}') from e
    if len(dataloader.dataset) == 0:
        raise CalibrationError(
            'the calibration split is empty: '
            f'{getattr(dataloader.dataset, "ann_file", "")}; hold out images '
            'with tools/convert_isbi.py --num-calib N')
    return dataloader


@contextlib.contextmanager
def _frozen_eval(model):
    """Eval mode with every weight frozen (BN statistics included): nothing
    may change but the calibration buffers. Restores both on exit."""
    was_training = model.training
    requires_grad = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), requires_grad):
            p.requires_grad_(flag)
        model.train(was_training)


def _check_valid(samples, what: str) -> None:
    """Refuses a batch holding an invalid (non-finite) landmark map."""
    invalid = sum(
        int((~np.asarray(s.pred_instances.keypoint_valid)).sum())
        for s in samples if 'keypoint_valid' in s.pred_instances)
    if invalid:
        raise CalibrationError(
            f'the network gives non-finite heatmaps for {invalid} landmark '
            f'map(s) of the calibration split (broken weights or inputs); '
            f'{what}')


def stream_logit_summaries(model, loader, num_bins: int = 2048):
    """Logit summaries and target weights of this rank's shard of
    ``loader``, as two lists with one (B_i, K) entry per batch.

    Runs the model's own test path (``test_step``: data preprocessor,
    backbone, head) with the head returning its logits, on one pass without
    flipping (the temperatures scale each pass's logits); the ground truth
    comes from the pipeline's ``GenerateTarget`` as in training. Only the
    O(K * num_bins) summaries are kept.
    """
    summaries, weights = [], []
    with changed_test_cfg(model, flip_test=False, output_logits=True), \
            torch.no_grad():
        for data in loader:
            samples = model.test_step(data)
            _check_valid(samples, 'nothing can be calibrated on them')
            if not all('heatmap_indices' in s.get('gt_instance_labels', {})
                       for s in samples):
                raise CalibrationError(
                    'the calibration samples carry no ground truth on the '
                    'model\'s grid: add dict(type=\'GenerateTarget\', '
                    'encoder=<model.head.decoder>) before PackPoseInputs in '
                    'the calibration pipeline (as configs/ceph/'
                    'unet_r34_onehot.py\'s val_pipeline does)')
            logits = torch.stack([s.pred_fields.logits for s in samples])
            index = torch.cat([
                s.gt_instance_labels.heatmap_indices for s in samples
            ]).to(logits.device)
            summaries.append(
                summarize_logits(logits, index, num_bins).to('cpu'))
            weights.append(
                torch.as_tensor(
                    np.concatenate([
                        np.asarray(s.pred_instances.keypoint_target_weight)
                        for s in samples
                    ])))
    return summaries, weights


def _predict_errors(model, loader):
    """ERE and radial error of every counted landmark, per image, in mm
    when the image has a ``spacing`` and in original-image pixels when it
    has none; and, per image, whether it has one."""
    ere, errors, in_mm = [], [], []
    with torch.no_grad():
        for data in loader:
            samples = model.test_step(data)
            _check_valid(samples, 'no flag threshold can be fitted')
            for sample in samples:
                pred, gt = sample.pred_instances, sample.gt_instances
                spacing = sample.metainfo.get('spacing')
                key = 'keypoint_ere_px' if spacing is None else \
                    'keypoint_ere_mm'
                if key not in pred:
                    raise CalibrationError(
                        f'the flag threshold needs {key} for '
                        f'{sample.metainfo.get("img_path", "a sample")}: '
                        'keep "input_scale" (and "spacing" for mm) in '
                        'PackPoseInputs(meta_keys=...) of the calibration '
                        'pipeline, and give every image a spacing or none')
                err = radial_errors_mm(
                    np.asarray(pred.keypoints)[0],
                    np.asarray(gt.keypoints)[0, :, :2],
                    1.0 if spacing is None else Spacing.parse(
                        spacing, f'{sample.metainfo.get("img_path")}: '
                        '"spacing"', error=CalibrationError).array())
                counted = np.asarray(pred.keypoint_target_weight)[0] > 0
                ere.append(np.asarray(pred[key])[0][counted])
                errors.append(err[counted])
                in_mm.append(np.array([spacing is not None]))
    return ere, errors, in_mm


def _mode_confidence(summary: LogitSummary, temperature: torch.Tensor):
    """Probability at the mode and mode == target, from the summary."""
    t = temperature.double()
    nll = nll_from_summary(summary, t)  # lse(z/T) - z_target/T
    log_conf = (summary.max_logit.double() -
                summary.target_logit.double()) / t - nll
    hit = summary.target_logit >= summary.max_logit
    return log_conf.exp(), hit, nll


def _fit_temperature(model, loader, num_bins: int,
                     prior_std: Optional[float], out_dir: str,
                     do_no_harm: bool = True, cv_folds: int = 10) -> Dict:
    """Fits (:func:`~.temperature_selection.select_temperatures`) and sets
    the head's temperatures; returns the report (main process; ``{}``
    elsewhere)."""
    head = model.head
    print_log(
        f'calibration: streaming {len(loader.dataset)} images of the '
        'calibration split', logger='current')
    summaries, weights = stream_logit_summaries(model, loader, num_bins)
    summaries = collect_results(summaries, len(loader), device='cpu')
    weights = collect_results(weights, len(loader), device='cpu')
    temperature = torch.ones_like(head.temperature).cpu()
    report = {}
    if is_main_process():
        summary = LogitSummary.cat(summaries)
        weight = torch.cat(weights).float()
        if not bool((weight > 0).any()):
            raise CalibrationError(
                'no landmark of the calibration split lies inside the '
                'heatmap; nothing to fit')
        before_t = head.temperature.detach().cpu()
        selection = select_temperatures(
            summary, weight, init=before_t, prior_std=prior_std or None,
            do_no_harm=do_no_harm, cv_folds=cv_folds)
        temperature = selection.temperature
        names = getattr(loader.dataset, 'metainfo',
                        {}).get('keypoint_id2name', {})
        report = _report(summary, weight, before_t, temperature, names,
                         out_dir)
        report['calib']['selection'] = selection.report()
        report['prior_std'] = prior_std or None
    head.set_temperature(
        broadcast_from_main(temperature, head.log_temperature.device))
    return report


def _fit_flag_threshold(model, loader, erroneous_mm: float,
                        erroneous_px: float,
                        target_tpr: float) -> Optional[Dict]:
    """Sets the head's flag threshold from the calibrated model's ERE on
    the calibration split, in mm when its images have a spacing and in
    original-image pixels when they have none; returns the flagging report
    (main process)."""
    head = model.head
    # the threshold is refitted: the old one (maybe in another unit) must
    # not flag, or refuse, the predictions it is fitted from
    head.flag_threshold.fill_(float('nan'))
    ere, errors, in_mm = _predict_errors(model, loader)
    # one entry per image: the size is the split's, not its batches'
    size = len(loader.dataset)
    ere = collect_results(ere, size, device='cpu')
    errors = collect_results(errors, size, device='cpu')
    in_mm = collect_results(in_mm, size, device='cpu')
    # threshold (NaN when not used), 1 for mm / 0 for image pixels, its
    # interval, images and erroneous landmarks
    fitted = torch.full((6, ), float('nan'))
    flagging = None
    if is_main_process():
        unit = error_unit(np.concatenate(in_mm))
        flagging = flagging_report(
            ere, errors, erroneous_mm if unit == 'mm' else erroneous_px,
            target_tpr, unit)
        fitted = torch.tensor([
            flagging['threshold'] if flagging['used'] else float('nan'),
            float(unit == 'mm'), flagging['interval']['low'],
            flagging['interval']['high'], flagging['num_images'],
            flagging['num_erroneous']
        ], dtype=torch.float64).float()
    fitted = broadcast_from_main(fitted, head.flag_threshold.device)
    if bool(torch.isfinite(fitted[0])):
        head.set_flag_threshold(
            float(fitted[0]), 'mm' if bool(fitted[1] > 0.5) else 'px')
    else:
        print_log(f'calibration: {flagging["reason"]}' if flagging else
                  'calibration: flag threshold not used', logger='current',
                  level=30)
    head.set_flag_basis(*(float(v) for v in fitted[2:]))
    return flagging


def _fit_conformal_regions(model, loader) -> Optional[Dict]:
    """Fits the head's conformal thresholds and disc radii on the
    calibration split (its calibrated maps, through the test path); returns
    the conformal report (main process; None elsewhere)."""
    head = model.head
    scores = collect_conformal_scores(model, loader)
    parts = collect_results([scores], get_world_size(), device='cpu')
    buffers = {
        name: torch.zeros_like(getattr(head, name)).cpu()
        for name in CALIBRATION_STATE_DEFAULTS if name.startswith('conformal_')
    }
    report = None
    if is_main_process():
        fit = fit_conformal(ConformalScores.cat(parts), head.conformal_levels)
        buffers = fit.head_buffers(head.conformal_score)
        names = getattr(loader.dataset, 'metainfo',
                        {}).get('keypoint_id2name', {})
        report = dict(
            fit.report(names, head.conformal_score),
            score=head.conformal_score)
    head.set_conformal_state({
        name: broadcast_from_main(value, getattr(head, name).device)
        for name, value in buffers.items()
    })
    return report


def _scale(report: Dict) -> str:
    scale = report['measurement_intervals']['scale']
    return ('not finite (too few calibration values for the level: '
            'intervals stay full-map)' if scale is None else f'{scale:.3f}')


def _log_report(report: Dict) -> None:
    c = report['calib']
    change = c['intervals']['NLL_change']
    selection = c.get('selection')
    if selection:
        print_log(f'calibration: temperatures: {selection["chosen"]} '
                  f'({selection["reason"]})', logger='current')
    print_log(
        f'calibration: NLL {c["NLL_before"]:.4f} -> {c["NLL_after"]:.4f} '
        f'(change {change["estimate"]:+.4f}, 95 % interval over the '
        f'{c["num_images"]} calibration images [{change["low"]:+.4f}, '
        f'{change["high"]:+.4f}], in-sample), '
        f'ECE {c["ECE_before"]:.4f} -> {c["ECE_after"]:.4f} on '
        f'{c["num_landmarks"]} landmarks; T in '
        f'[{min(report["temperature"].values()):.3f}, '
        f'{max(report["temperature"].values()):.3f}]' +
        (f'; {describe_flagging(report["flagging"])}'
         if report.get('flagging') else '') +
        (f'; conformal regions at levels {report["conformal"]["levels"]} '
         f'({report["conformal"]["score"]} score)'
         if report.get('conformal') else '') +
        (f'; measurement interval scale {_scale(report)} at level '
         f'{report["measurement_intervals"]["level"]} from '
         f'{report["measurement_intervals"]["num_scores"]} calibration '
         'values, ' + jitter_note(
             report['measurement_intervals'].get('jitter') is not None,
             report['measurement_intervals'].get('jitter_images', 0))
         if report.get('measurement_intervals') else ''),
        logger='current')


def calibrate_model(runner,
                    dataloader,
                    erroneous_mm: float = 2.0,
                    target_tpr: float = 0.5,
                    num_bins: int = 2048,
                    out_dir: Optional[str] = None,
                    checkpoint_name: Optional[str] = 'calibrated.pth',
                    prior_std: Optional[float] = 1.0,
                    erroneous_px: float = 10.0,
                    do_no_harm: bool = True,
                    cv_folds: int = 10,
                    shape_data=None,
                    plausibility_alpha: float = 0.02) -> Dict:
    """Fits temperatures, the flag threshold and the conformal regions of
    ``runner.model``.

    Args:
        runner (Runner): A runner whose model has a ``SoftmaxHeatmapHead``
            (weights already loaded).
        dataloader (dict | DataLoader): The calibration split (never the
            test split); its pipeline must encode the ground truth with
            ``GenerateTarget(encoder=<the head's codec>)``.
        erroneous_mm (float): Radial error (mm) defining "erroneous" when
            the calibration images have a ``spacing``; the threshold is
            then in mm.
        target_tpr (float): TPR the ERE threshold must reach on the
            calibration split. 0 or None skips the threshold.
        num_bins (int): Histogram bins of the logit summaries.
        out_dir (str, optional): Where the report goes (default: the
            runner's work dir).
        checkpoint_name (str, optional): File name of the calibrated
            checkpoint in ``out_dir``; None to skip saving.
        prior_std (float, optional): Std of the Gaussian prior on each
            landmark's log T, centred at the pooled T (see
            :func:`~mmchh.calibration.temperature.fit.fit_temperatures`).
            Default 1.0: with a small calibration split a landmark whose every
            target sits at its mode would otherwise get T -> 0 (certainty).
            None or 0 = plain maximum likelihood (the paper's).
        erroneous_px (float): The same in original-image pixels, used when
            the calibration images have no ``spacing`` (COCO, hands): the
            threshold is then in image pixels (the head's
            ``flag_threshold_in_mm`` is False). Temperatures and conformal
            regions need no unit.
        do_no_harm (bool): Keep the per-landmark fit only when its
            cross-validated NLL change over the calibration images excludes
            harm, else the pooled T, else T = 1
            (:func:`~.temperature_selection.select_temperatures`; the choice
            and why are in the report's ``calib.selection``). False: the
            per-landmark fit, unchecked.
        cv_folds (int): Folds of that cross-validation at most (with up to
            this many images, leave-one-image-out).
        shape_data: The training split (dataset, dataloader or config) the
            configuration model is fitted on; None: no configuration model.
        plausibility_alpha (float): Share of correct calibration landmarks
            the plausibility threshold may flag
            (:mod:`.configuration_calibration`; report ``configuration``).

    Returns:
        dict: the report (also written as ``calibration.json``), with
        ``weights_fingerprint``: the hex fingerprint of the weights the
        calibration is bound to (also in the checkpoint's
        ``meta["calibration"]``), ``conformal``: the conformal fit
        (:meth:`~mmchh.calibration.conformal.fitting.ConformalFit.report` and
        the head's ``score``), and ``configuration`` (see
        :func:`~.configuration_calibration.fit_configuration_calibration`).

    Raises:
        CalibrationError: for a setting out of its range
            (:func:`~.calibration_settings.check_calibration_settings`,
            before any image is read) or a split that cannot be used.
    """
    check_calibration_settings(erroneous_mm, erroneous_px, target_tpr,
                               prior_std, cv_folds, num_bins,
                               plausibility_alpha)
    model = _unwrap(runner.model)
    head = model.head
    if not hasattr(head, 'set_temperature'):
        raise CalibrationError(
            f'{type(head).__name__} has no temperatures; temperature '
            'scaling needs SoftmaxHeatmapHead')
    out_dir = out_dir or runner.work_dir
    loader = _build_loader(runner, dataloader)
    with _frozen_eval(model):
        report = _fit_temperature(model, loader, num_bins, prior_std,
                                  out_dir, do_no_harm, cv_folds)
        if target_tpr:
            report['flagging'] = _fit_flag_threshold(
                model, loader, erroneous_mm, erroneous_px, target_tpr)
        # on the calibrated maps of the calibration split only
        report['conformal'] = _fit_conformal_regions(model, loader)
        # within those regions, when the split has the measurements'
        # landmarks (the 19 ISBI ones)
        report['measurement_intervals'] = fit_calibration_intervals(
            model, loader)
        report['configuration'] = fit_configuration_calibration(
            model, loader, shape_data, plausibility_alpha, erroneous_mm,
            erroneous_px)
        # the fitted state now belongs to exactly these weights
        report['weights_fingerprint'] = head.seal_calibration(
            model.state_dict())
    if is_main_process():
        if checkpoint_name:
            path = osp.join(out_dir, checkpoint_name)
            _save_calibrated(model, loader, runner, path, report)
            report['checkpoint'] = path
        write_json(osp.join(out_dir, 'calibration.json'), report)
        _log_report(report)
    return report


def _report(summary, weight, before_t, after_t, names, out_dir) -> Dict:
    """NLL and ECE before/after on the calibration split, their paired
    bootstrap intervals over images, plus a diagram."""
    mask = (weight > 0).numpy()
    out, per_image = {}, {}
    for tag, t in (('before', before_t), ('after', after_t)):
        conf, hit, nll = (v.numpy() for v in _mode_confidence(summary, t))
        # (B, K) per image: the bootstrap resamples images, not landmarks
        per_image[tag] = (conf, hit, nll)
        out[tag] = dict(
            nll=float(nll[mask].mean()),
            reliability=expected_calibration_error(conf[mask], hit[mask],
                                                   10, 'max'),
            reliability_unit=expected_calibration_error(
                conf[mask], hit[mask], 10, 'unit'))
    os.makedirs(out_dir, exist_ok=True)
    reliability_diagram_png(
        osp.join(out_dir, 'calib_reliability_before_after.png'),
        out['before']['reliability'],
        out['after']['reliability'],
        title='calibration split: before / after temperature scaling')
    return dict(
        temperature={
            names.get(k, str(k)): float(v)
            for k, v in enumerate(after_t.tolist())
        },
        calib=dict(
            num_images=int(summary.target_logit.shape[0]),
            num_landmarks=int(mask.sum()),
            NLL_before=out['before']['nll'],
            NLL_after=out['after']['nll'],
            ECE_before=out['before']['reliability']['ece'],
            ECE_after=out['after']['reliability']['ece'],
            ECE_unit_before=out['before']['reliability_unit']['ece'],
            ECE_unit_after=out['after']['reliability_unit']['ece'],
            intervals=calibration_change_intervals(per_image, mask),
            reliability_before=out['before']['reliability'],
            reliability_after=out['after']['reliability']))


def calibration_change_intervals(per_image: Dict, mask) -> Dict:
    """Bootstrap intervals (95 %, 1000 resamples of the calibration images,
    seed 0) of the NLL and the ECE after minus before, paired: each
    resample draws the same images for both. In-sample (the temperatures
    were fitted on these images), so the change is optimistic.

    Args:
        per_image (dict): ``'before'`` and ``'after'``, each a tuple of
            (B, K) arrays: mode confidence, mode hit, NLL.
        mask (np.ndarray): (B, K) bool, the annotated landmarks.

    Returns:
        dict: ``NLL_change`` and ``ECE_change``, each
        :class:`~mmchh.evaluation.functional.bootstrap.BootstrapInterval`
        as a dict.
    """
    conf_b, hit_b, nll_b = per_image['before']
    conf_a, hit_a, nll_a = per_image['after']

    def ece(conf, hit, valid):
        # undefined (dropped and counted) on a resample of images that have
        # no annotated landmark
        if not valid.any():
            return float('nan')
        return expected_calibration_error(conf[valid], hit[valid], 10,
                                          'max')['ece']

    return dict(
        NLL_change=paired_bootstrap_mean(
            nll_b, nll_a, valid_a=mask, valid_b=mask).as_dict(),
        ECE_change=paired_bootstrap(ece, (conf_b, hit_b, mask),
                                    (conf_a, hit_a, mask)).as_dict())


def _save_calibrated(model, loader, runner, path: str, report: Dict):
    """Weights + metainfo + the calibration summary, without building the
    training dataloader (``Runner.save_checkpoint`` would, for its meta)."""
    import time

    import mmengine
    from mmengine.runner.checkpoint import (get_state_dict, save_checkpoint,
                                            weights_to_cpu)

    from mmchh.utils.checkpoint_recipe import add_recipe
    meta = dict(
        mmengine_version=mmengine.__version__,
        time=time.strftime('%Y%m%d_%H%M%S', time.localtime()),
        # from the message hub: runner.epoch would build the train loop
        epoch=runner.message_hub.get_info('epoch'),
        iter=runner.message_hub.get_info('iter'),
        cfg=runner.cfg.pretty_text,
        dataset_meta=getattr(loader.dataset, 'metainfo', None),
        calibration=dict(
            temperature=report.get('temperature'),
            flagging=report.get('flagging'),
            conformal=report.get('conformal'),
            measurement_intervals=report.get('measurement_intervals'),
            configuration=report.get('configuration'),
            weights_fingerprint=report.get('weights_fingerprint')))
    # what the model needs to predict, as plain data (no config needed)
    add_recipe(meta, runner.cfg)
    save_checkpoint(
        dict(meta=meta, state_dict=weights_to_cpu(get_state_dict(model))),
        path)


