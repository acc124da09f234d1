# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""What the fitted measurement intervals rest on, split by split.

For every image of the given COCO splits the calibrated model predicts the
19 landmarks; each measurement gets a center and a spread from landmarks
drawn within their conformal regions
(:func:`mmchh.apis.region_measurements.region_center_spread`) in three
ways: the maps' own draws at pixel centres, draws inside the drawn pixels
(``within_pixel``), and the pixel-centre draws widened by the landmarks'
jitter fitted on the calibration split, as calibration fits it (each
calibration image with the jitter fitted without it,
:func:`mmchh.calibration.conformal.split_draws.fit_split_jitter`; the
other splits with the jitter fitted on all of it -- what the API uses).
The normalised residual ``|true - center| / spread`` of each (image,
measurement) is what the pooled split-conformal scale is fitted on
(:func:`mmchh.calibration.fit_measurement_intervals`): per split and
measurement its median and largest value show whether one pooled scale
suits all eight measurements; the scale refitted on the calibration split
for each draw gives each test split's width / MAE and coverage. The
landmark errors (mm) test the draws' independence: if errors were shared
by the landmarks of an image, the variance of an image's mean error would
exceed ``1 / K`` of a landmark's error variance.
"""
import json
import os.path as osp

import numpy as np

DRAWS = ('pixel_centre', 'within_pixel', 'jitter')


def _coco_rows(path):
    """(file path, keypoints (K, 2), spacing) per image of a COCO split."""
    with open(path) as f:
        doc = json.load(f)
    anns = {a['image_id']: a for a in doc['annotations']}
    root = osp.dirname(path)
    for im in doc['images']:
        points = np.asarray(anns[im['id']]['keypoints'],
                            np.float64).reshape(-1, 3)[:, :2]
        yield osp.join(root, im['file_name']), points, im.get('spacing')


def predict_split(model, path, num_samples, seed):
    """Per image: the truth, center and spread of each measurement for
    the maps' own draws (pixel centres, within pixels), the landmark errors
    in mm (K, 2) and the image's draws for the jitter (``draws``, see
    :func:`add_jitter_draws`)."""
    from mmchh.apis import predict_landmarks
    from mmchh.apis.region_measurements import (RegionDraws,
                                                region_center_spread,
                                                region_image_draws)
    from mmchh.calibration.conformal.split_draws import draw_center_spread
    draws = RegionDraws.of_model(model, None, num_samples, seed)
    images = []
    for index, (file, points, spacing) in enumerate(_coco_rows(path)):
        result = predict_landmarks(model, file, spacing=spacing,
                                   return_heatmaps=True)[0]
        mm = np.asarray(result.spacing, np.float64)
        pred = np.array([[np.nan, np.nan] if not lm['valid'] else
                         [lm['x'], lm['y']] for lm in result.landmarks])
        image = region_image_draws(result, model.head, draws, index, points)
        row = dict(image=osp.basename(file), errors_mm=(pred - points) * mm,
                   draws=image)
        # the pixel-centre draws are the image's draws, unwidened; the
        # within-pixel ones move each draw inside its pixel
        for kind, stats in (
                (DRAWS[0], draw_center_spread(image, None)),
                (DRAWS[1], region_center_spread(result, model.head, draws,
                                                index, within_pixel=True))):
            row[kind] = {name: (image.truth[name], center, spread)
                         for name, (center, spread) in stats.items()}
        images.append(row)
    return images


def add_jitter_draws(split_images, calib_split):
    """Fills each row's ``jitter`` draw: the calibration split's images
    widened by the jitter fitted without each (cross-fitted, as
    calibration scores them), every other split's by the jitter fitted on
    the whole calibration split; drops the rows' ``draws``.

    Returns:
        np.ndarray | None: The (K, 2, 2) jitter fitted on the calibration
        split (None: too few images).
    """
    from mmchh.calibration.conformal.split_draws import (draw_center_spread,
                                                         fit_split_jitter)
    calib = split_images[calib_split]
    jitter, per_image = fit_split_jitter([r['draws'] for r in calib])
    for split, rows in split_images.items():
        for i, r in enumerate(rows):
            use = per_image[i] if split == calib_split else jitter
            image = r.pop('draws')
            stats = draw_center_spread(image, use)
            r['jitter'] = {name: (image.truth[name], center, spread)
                           for name, (center, spread) in stats.items()}
    return jitter


def jitter_sds(jitter):
    """Per landmark the jitter's two standard deviations (heatmap pixels,
    smaller first: the square roots of its eigenvalues) and the direction
    of the larger, in degrees from the heatmap's x axis (y down, in
    [0, 180)); None without."""
    if jitter is None:
        return None
    out = []
    for j in np.asarray(jitter, np.float64):
        w, v = np.linalg.eigh(j)
        angle = float(np.degrees(np.arctan2(v[1, 1], v[0, 1]))) % 180.0
        out.append([round(float(x), 3) for x in np.sqrt(w.clip(0))] +
                   [round(angle, 1)])
    return out


def scores(images, kind):
    """name -> (N,) normalised residuals (NaN without an interval)."""
    from mmchh.evaluation.functional import interval_scores
    names = list(images[0][kind])
    return {name: np.array([
        float(interval_scores(r[kind][name][1], r[kind][name][2],
                              r[kind][name][0])) for r in images])
            for name in names}


def _fmt(values):
    return [round(float(v), 3) for v in values]


def score_table(images, kind):
    """Per measurement: median and largest normalised residual."""
    out = {}
    for name, s in scores(images, kind).items():
        s = s[np.isfinite(s)]
        out[name] = dict(median=round(float(np.median(s)), 3),
                         max=round(float(s.max()), 3), n=int(s.size))
    return out


def test_table(images, kind, scale):
    """Per measurement on a test split: MAE, mean fitted width, their
    ratio and the coverage of ``center +- scale * spread``."""
    out = {}
    for name in images[0][kind]:
        rows = np.array([r[kind][name] for r in images], np.float64)
        ok = np.isfinite(rows).all(axis=1)
        truth, center, spread = rows[ok].T
        err = np.abs(truth - center)
        width = 2 * scale * spread
        out[name] = dict(mae=round(float(err.mean()), 3),
                         width=round(float(width.mean()), 3),
                         width_per_mae=round(float(width.mean() /
                                                   err.mean()), 2),
                         coverage=round(float(np.mean(err <= scale * spread)),
                                        3),
                         n=int(ok.sum()))
    return out


def error_sharing(split_images):
    """Whether an image's landmarks err together: var of the image-mean
    error over the mean per-landmark error variance (x, y), against
    ``1 / K`` for independent errors."""
    errors = np.concatenate([np.stack([r['errors_mm'] for r in imgs])
                             for imgs in split_images.values()])
    errors = errors[np.isfinite(errors).all(axis=(1, 2))]
    k = errors.shape[1]
    ratio = errors.mean(axis=1).var(axis=0) / errors.var(axis=0).mean(axis=0)
    return dict(images=int(errors.shape[0]), landmarks=int(k),
                ratio_xy=_fmt(ratio), independent=round(1 / k, 4))


def summarise(split_images, calib_split, level, region_level):
    """The JSON: score tables per split and draw, the scale refitted on
    ``calib_split`` per draw and what it gives on every other split."""
    from mmchh.calibration import fit_measurement_intervals
    out = dict(error_sharing=error_sharing(split_images), draws={})
    for kind in DRAWS:
        fit = fit_measurement_intervals(
            scores(split_images[calib_split], kind), level=level,
            region_level=region_level)
        out['draws'][kind] = dict(
            scale=round(fit.scale, 4), rank=fit.rank,
            num_scores=fit.num_scores,
            scores={split: score_table(imgs, kind)
                    for split, imgs in split_images.items()},
            tests={split: test_table(imgs, kind, fit.scale)
                   for split, imgs in split_images.items()
                   if split != calib_split})
    return out


def format_table(result):
    """The Markdown table docs/measurements.md shows for a run: per
    measurement the median normalised residual on each split and the
    width / MAE on each test split, for the three draws (pixel centre /
    within pixel / with jitter), the largest on the calibration split,
    then the refitted scales, the pooled coverages and the error
    sharing."""
    draws = [result['draws'][kind] for kind in DRAWS]
    centre = draws[0]
    splits = list(centre['scores'])
    tests = list(centre['tests'])
    calib = result['calib_split']
    head = (['measure'] + [f'median {s}' for s in splits] +
            [f'largest {calib}'] + [f'w/MAE {s}' for s in tests])
    lines = ['| ' + ' | '.join(head) + ' |',
             '|' + '---|' * len(head)]

    def cell(value):
        return ' / '.join(f'{value(d):.2f}' for d in draws)

    for name in centre['scores'][splits[0]]:
        cells = [name]
        cells += [cell(lambda d: d['scores'][s][name]['median'])
                  for s in splits]
        cells.append(cell(lambda d: d['scores'][calib][name]['max']))
        cells += [cell(lambda d: d['tests'][s][name]['width_per_mae'])
                  for s in tests]
        lines.append('| ' + ' | '.join(cells) + ' |')

    def pooled(tables):
        n = sum(t['n'] for t in tables.values())
        return sum(t['coverage'] * t['n'] for t in tables.values()) / n

    cov = ', '.join(
        f'{s} ' + ' / '.join(f"{pooled(d['tests'][s]):.3f}" for d in draws)
        for s in tests)
    share = result['error_sharing']
    lines += [
        '',
        f"Scale refitted on {calib} (rank "
        f"{centre['rank']} of {centre['num_scores']}): " +
        ' / '.join(f"{d['scale']:.3f}" for d in draws) +
        f'; pooled coverage {cov}. Landmark errors ({share["images"]} '
        f"images): variance of an image's mean error / a landmark's error "
        f"variance {share['ratio_xy'][0]:.3f} (x), "
        f"{share['ratio_xy'][1]:.3f} (y); independent errors give "
        f"1/{share['landmarks']} = {share['independent']:.3f}."
    ]
    return '\n'.join(lines)
