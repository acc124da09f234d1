"""The configuration model (``mmchh.codecs.utils.configuration_model``)
against a slow reference written the obvious way, on hand-computed cases,
under similarity transforms, with wild landmarks, and as a conformal flag
on synthetic cephalometric shapes."""
import numpy as np
import pytest

from mmchh.codecs.utils.configuration_model import (
    MIN_LANDMARKS, PRIOR_SHAPES, TUKEY_C, ConfigurationModel,
    fit_configuration_model, generalized_procrustes, plausibility_scores,
    robust_alignment_weights, similarity_fit)
from mmchh.datasets.synthetic.anatomy import place_landmarks
from mmchh.evaluation.functional.conformal import conformal_thresholds


# --------------------------------------------------------------------------
# the slow reference: float64, explicit loops, explicit inverses
# --------------------------------------------------------------------------
def ref_similarity(src, dst, w):
    """Weighted Umeyama similarity without reflection: SVD of the 2x2
    cross-covariance. Returns (s, R, t) with dst ~ s R src + t."""
    w = np.asarray(w, float)
    total = w.sum()
    mu_s = sum(w[i] * src[i] for i in range(len(w))) / total
    mu_d = sum(w[i] * dst[i] for i in range(len(w))) / total
    cross = np.zeros((2, 2))
    var = 0.0
    for i in range(len(w)):
        cross += w[i] * np.outer(dst[i] - mu_d, src[i] - mu_s)
        var += w[i] * float((src[i] - mu_s) @ (src[i] - mu_s))
    cross /= total
    var /= total
    if var == 0:
        return 0.0, np.eye(2), mu_d
    u, d, vt = np.linalg.svd(cross)
    fix = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt))])
    rot = u @ fix @ vt
    scale = float(np.trace(np.diag(d) @ fix)) / var
    return scale, rot, mu_d - scale * rot @ mu_s


def ref_apply(points, s, r, t):
    return s * points @ r.T + t


def ref_normalise(mean):
    present = np.isfinite(mean).all(1)
    centre = mean[present].mean(0)
    out = mean - centre
    return out / np.sqrt(np.nansum(out**2))


def ref_procrustes(shapes, iters=100):
    """GPA the textbook way: align every shape to the mean, average,
    normalise, keep the previous mean's orientation; until it settles."""
    n, k, _ = shapes.shape
    present = np.isfinite(shapes).all(-1)
    mean = ref_normalise(shapes[int(np.argmax(present.sum(1)))])
    for _ in range(iters):
        aligned = np.full_like(shapes, np.nan)
        for i in range(n):
            use = present[i] & np.isfinite(mean).all(1)
            s, r, t = ref_similarity(shapes[i][use], mean[use],
                                     np.ones(use.sum()))
            for j in range(k):
                if present[i, j]:
                    aligned[i, j] = s * r @ shapes[i, j] + t
        new = np.full((k, 2), np.nan)
        for j in range(k):
            rows = [aligned[i, j] for i in range(n) if present[i, j]]
            if rows:
                new[j] = np.mean(rows, axis=0)
        new = ref_normalise(new)
        use = np.isfinite(new).all(1) & np.isfinite(mean).all(1)
        s, r, t = ref_similarity(new[use], mean[use], np.ones(use.sum()))
        new = ref_normalise(ref_apply(new, s, r, t))
        moved = np.nansum((new - mean)**2)
        mean = new
        if moved < 1e-14:
            break
    return mean


def ref_loo(points, mean, weights, k):
    """Landmark k's residual from the mean after aligning ``points`` on the
    others (weighted), and that alignment's scale; None if it cannot."""
    others = [j for j in range(len(mean)) if j != k and weights[j] > 0
              and np.isfinite(points[j]).all() and np.isfinite(mean[j]).all()]
    if len(others) < 2 or not np.isfinite(points[k]).all():
        return None
    s, r, t = ref_similarity(points[others], mean[others], weights[others])
    if s == 0:
        return None
    return s * r @ points[k] + t - mean[k], s


def ref_fit(shapes):
    n, k, _ = shapes.shape
    mean = ref_procrustes(shapes)
    offset = np.full((k, 2), np.nan)
    raw = np.full((k, 2, 2), np.nan)
    counts = np.zeros(k, int)
    for j in range(k):
        res = [ref_loo(shapes[i], mean, np.ones(k), j) for i in range(n)]
        res = np.array([r[0] for r in res if r is not None])
        counts[j] = len(res)
        if len(res) >= 2:
            offset[j] = res.mean(0)
            raw[j] = np.cov(res.T, ddof=1)
    fitted = counts >= 2
    pooled = np.mean([np.trace(raw[j]) / 2 for j in np.flatnonzero(fitted)])
    cov = np.full((k, 2, 2), np.nan)
    for j in np.flatnonzero(fitted):
        dof = counts[j] - 1
        cov[j] = (dof * raw[j] + PRIOR_SHAPES * pooled * np.eye(2)) / (
            dof + PRIOR_SHAPES)
    return mean, offset, cov, counts


def ref_weights(points, model, num_iter=10):
    """LMedS over every pair's exact similarity, then Tukey-reweighted
    Procrustes (residuals against mean + offset, in landmark sigmas)."""
    k = len(points)
    use = [j for j in range(k) if np.isfinite(points[j]).all()
           and model.usable[j]]
    weights = np.zeros(k)
    if len(use) < MIN_LANDMARKS:
        return weights
    sig = {j: np.sqrt(np.trace(model.cov[j]) / 2) for j in use}

    target = model.mean[use] + model.offset[use]
    scale = np.array([sig[j] for j in use])

    def z_of(s, r, t):
        return np.linalg.norm(ref_apply(points[use], s, r, t) - target,
                              axis=1) / scale

    best, best_med = None, np.inf
    for a in range(len(use)):
        for b in range(a + 1, len(use)):
            i, j = use[a], use[b]
            if (points[i] == points[j]).all():
                continue
            s, r, t = ref_similarity(points[[i, j]], model.mean[[i, j]],
                                     np.ones(2))
            med = np.median(z_of(s, r, t))
            if med < best_med:
                best, best_med = (s, r, t), med
    w = np.ones(len(use))
    s, r, t = best
    for _ in range(num_iter):
        z = z_of(s, r, t)
        # the median distance of a 2-D standard normal point: sqrt(2 ln 2)
        spread = max(np.median(z) / np.sqrt(2 * np.log(2)), 1.0)
        new = np.array([(1 - (v / (TUKEY_C * spread))**2)**2
                        if v < TUKEY_C * spread else 0.0 for v in z])
        if (new > 0).sum() < 2:
            break
        w = new
        s, r, t = ref_similarity(points[use], model.mean[use], w)
    weights[use] = w
    return weights


def ref_scores(points, model, weights):
    """Per landmark: the Mahalanobis norm of its residual after the
    weighted alignment on the others, and the residual in point units."""
    k = len(points)
    sigma = np.full(k, np.nan)
    dist = np.full(k, np.nan)
    if (weights > 0).sum() < 2:
        return sigma, dist
    for j in range(k):
        if not model.usable[j]:
            continue
        out = ref_loo(points, model.mean, weights * model.usable, j)
        if out is None:
            continue
        resid = out[0] - model.offset[j]
        sigma[j] = np.sqrt(resid @ np.linalg.inv(model.cov[j]) @ resid)
        dist[j] = np.linalg.norm(resid) / out[1]
    return sigma, dist


# --------------------------------------------------------------------------
# random configurations
# --------------------------------------------------------------------------
def _rotation(angle):
    return np.array([[np.cos(angle), -np.sin(angle)],
                     [np.sin(angle), np.cos(angle)]])


def _random_shapes(rng, num, k, noise=0.05, missing=0.1):
    """``num`` noisy, randomly posed copies of one random template, some
    landmarks NaN (never fewer than 3 present)."""
    template = rng.normal(size=(k, 2))
    shapes = []
    for _ in range(num):
        pose = rng.uniform(0.5, 2.0) * template @ _rotation(
            rng.uniform(-np.pi, np.pi)).T + rng.normal(0, 5, 2)
        shapes.append(pose + rng.normal(0, noise, (k, 2)))
    shapes = np.stack(shapes)
    drop = rng.random((num, k)) < missing
    drop[:, :3] = False
    shapes[drop] = np.nan
    return shapes


@pytest.mark.parametrize('k', [3, 37])
def test_fit_matches_the_slow_reference(k):
    rng = np.random.default_rng(k)
    shapes = _random_shapes(rng, 8, k)
    model = fit_configuration_model(shapes)
    mean, offset, cov, counts = ref_fit(shapes)
    # the mean's orientation is the GPA's own: compare after aligning
    s, r, t = ref_similarity(mean, model.mean, np.ones(k))
    assert s == pytest.approx(1.0, abs=1e-8)
    np.testing.assert_allclose(ref_apply(mean, s, r, t), model.mean,
                               atol=1e-8)
    np.testing.assert_allclose(offset @ r.T, model.offset, atol=1e-8)
    np.testing.assert_allclose(r @ cov @ r.T, model.cov, rtol=1e-6,
                               atol=1e-12)
    np.testing.assert_array_equal(counts, model.num_shapes)
    assert model.usable.all()


@pytest.mark.parametrize('k', [3, 37])
def test_scores_match_the_slow_reference(k):
    rng = np.random.default_rng(100 + k)
    model = fit_configuration_model(_random_shapes(rng, 12, k))
    for points in _random_shapes(rng, 2 if k > 3 else 6, k, noise=0.1,
                                 missing=0.15):
        if k > 3:  # one wild landmark
            points[5] += 3.0
        ref_w = ref_weights(points, model)
        np.testing.assert_allclose(
            robust_alignment_weights(points, model), ref_w, atol=1e-8)
        sigma, dist = plausibility_scores(points, model)
        ref_sigma, ref_dist = ref_scores(points, model, ref_w)
        np.testing.assert_array_equal(np.isnan(sigma), np.isnan(ref_sigma))
        np.testing.assert_allclose(sigma, ref_sigma, rtol=1e-7)
        np.testing.assert_allclose(dist, ref_dist, rtol=1e-7)
        present = np.isfinite(points).all(1)
        assert np.isnan(sigma[~present]).all()
        if k > 3:  # (with 3, a down-weighted one leaves 1 anchor: NaN)
            assert np.isfinite(sigma[present]).all()


# --------------------------------------------------------------------------
# by hand
# --------------------------------------------------------------------------
def test_similarity_of_a_square_is_exact():
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    angle = np.deg2rad(30)
    moved = 2.0 * square @ _rotation(angle).T + [3.0, -1.0]
    s, r, t = similarity_fit(square, moved)
    assert s == pytest.approx(2.0, abs=1e-12)
    np.testing.assert_allclose(r, _rotation(angle), atol=1e-12)
    np.testing.assert_allclose(t, [3.0, -1.0], atol=1e-12)
    # a reflection is not a similarity: the best rotation of a mirrored
    # square fits worse than exactly
    s, r, t = similarity_fit(square, square * [-1, 1])
    assert np.linalg.det(r) == pytest.approx(1.0)
    assert not np.allclose(s * square @ r.T + t, square * [-1, 1])


def test_a_moved_point_of_three_has_its_known_residual():
    """With three landmarks, the other two fix the similarity exactly: the
    moved one's residual is its displacement, in model units divided by
    the pose's scale."""
    mean = np.array([[0.0, 0.0], [1.0, 0.0], [0.3, 0.8]])
    sd = 0.05
    model = ConfigurationModel(
        mean=mean, offset=np.zeros((3, 2)),
        cov=np.tile(sd**2 * np.eye(2), (3, 1, 1)),
        num_shapes=np.full(3, 10))
    scale, angle, shift = 40.0, np.deg2rad(-20), np.array([100.0, 50.0])
    points = scale * mean @ _rotation(angle).T + shift
    delta = np.array([2.4, -3.2])  # 4 units long
    points[2] += delta
    sigma, dist = plausibility_scores(points, model)
    assert dist[2] == pytest.approx(4.0, rel=1e-9)
    assert sigma[2] == pytest.approx(4.0 / scale / sd, rel=1e-9)
    # the unmoved pose scores 0 everywhere
    sigma, dist = plausibility_scores(points - np.eye(3)[2][:, None] * delta,
                                      model)
    np.testing.assert_allclose(sigma, 0, atol=1e-9)
    np.testing.assert_allclose(dist, 0, atol=1e-9)


def test_missing_and_too_few_landmarks_score_nan():
    rng = np.random.default_rng(3)
    model = fit_configuration_model(_random_shapes(rng, 8, 5, missing=0))
    points = _random_shapes(rng, 1, 5, missing=0)[0]
    points[1] = np.nan
    sigma, dist = plausibility_scores(points, model)
    assert np.isnan(sigma[1]) and np.isfinite(np.delete(sigma, 1)).all()
    points[[0, 2]] = np.nan  # two left: below MIN_LANDMARKS
    assert np.isnan(plausibility_scores(points, model)[0]).all()
    with pytest.raises(ValueError, match='at least 2 shapes'):
        fit_configuration_model(points[None])
    with pytest.raises(ValueError, match='points must be'):
        plausibility_scores(points[:3], model)


# --------------------------------------------------------------------------
# invariance and robustness
# --------------------------------------------------------------------------
def test_scores_are_similarity_invariant():
    rng = np.random.default_rng(7)
    model = fit_configuration_model(_random_shapes(rng, 15, 19))
    points = _random_shapes(rng, 1, 19, noise=0.2)[0]
    sigma, dist = plausibility_scores(points, model)
    for scale in (0.01, 3.0, 250.0):
        moved = scale * points @ _rotation(1.1).T + [-40.0, 7.5]
        s2, d2 = plausibility_scores(moved, model)
        np.testing.assert_allclose(s2, sigma, rtol=1e-7, equal_nan=True)
        np.testing.assert_allclose(d2, scale * dist, rtol=1e-7,
                                   equal_nan=True)


def _ceph_shapes(seed, num):
    """Synthetic cephalometric landmarks (19, in mm: full-size pixels of
    0.1 mm)."""
    rng = np.random.default_rng(seed)
    return np.stack([place_landmarks(rng)[1] for _ in range(num)]) * 0.1


@pytest.fixture(scope='module')
def ceph():
    """A model fitted on 16 synthetic heads, and 120 held-out heads."""
    shapes = _ceph_shapes(0, 136)
    return fit_configuration_model(shapes[:16]), shapes[16:]


def test_two_wild_landmarks_move_nobody_else(ceph):
    """Two of 19 landmarks 30 mm off: the others' sigmas hardly move (the
    robust alignment drops the wild ones; a wild one on a landmark that
    varies a lot keeps some weight, so a change up to ~2.5 sigma happens,
    rarely), and the wild ones score far above a 2 % threshold (~3)."""
    model, held_out = ceph
    rng = np.random.default_rng(11)
    typical, largest = [], []
    for shape in held_out[:20]:
        points = shape + rng.normal(0, 0.5, shape.shape)
        before, own = plausibility_scores(points, model)
        wild = rng.choice(19, 2, replace=False)
        angles = rng.uniform(0, 2 * np.pi, 2)
        points[wild] += 30 * np.stack([np.cos(angles), np.sin(angles)], 1)
        after, dist = plausibility_scores(points, model)
        change = np.abs(np.delete(after - before, wild))
        typical.append(np.median(change))
        largest.append(change.max())
        assert (after[wild] > 5).all()
        # the residual is the displacement, give or take where the landmark
        # already was (an atypical head: up to ~17 mm) and a few mm
        assert (np.abs(dist[wild] - 30) <= own[wild] + 6).all()
    assert max(typical) < 0.75 and np.mean(largest) < 0.75
    assert max(largest) < 3


def test_conformal_flag_on_synthetic_heads(ceph):
    """Fitted on 16 heads, the threshold at alpha on 40 held-out heads
    (1 mm prediction noise) flags about alpha of 40 others' correct
    landmarks and catches a landmark moved 15-80 mm nearly always."""
    model, held_out = ceph
    rng = np.random.default_rng(5)
    alpha = 0.02

    def noisy(shapes):
        return shapes + rng.normal(0, 1.0, shapes.shape)

    calib = np.stack([plausibility_scores(p, model)[0]
                      for p in noisy(held_out[:40])])
    threshold = conformal_thresholds(calib.reshape(-1),
                                     [1 - alpha])['pooled'][0]
    assert np.isfinite(threshold)
    test = np.stack([plausibility_scores(p, model)[0]
                     for p in noisy(held_out[40:80])])
    assert np.isfinite(test).all()
    assert (test > threshold).mean() <= alpha + 0.02
    caught = []
    for points in noisy(held_out[80:120]):
        k = rng.integers(19)
        angle = rng.uniform(0, 2 * np.pi)
        points[k] += rng.uniform(15, 80) * np.array(
            [np.cos(angle), np.sin(angle)])
        caught.append(plausibility_scores(points, model)[0][k] > threshold)
    assert np.mean(caught) >= 0.95


def test_procrustes_mean_is_centred_unit_norm():
    rng = np.random.default_rng(2)
    shapes = _random_shapes(rng, 6, 7)
    mean, aligned = generalized_procrustes(shapes)
    np.testing.assert_allclose(mean.mean(0), 0, atol=1e-12)
    assert np.sum(mean**2) == pytest.approx(1.0)
    np.testing.assert_array_equal(np.isnan(aligned), np.isnan(shapes))
