import math

import numpy as np
import pytest
import torch

from mmchh.codecs.utils import (expected_radial_error, heatmap_mode,
                                log_softmax_2d, nll_at_index, softmax_2d)


def slow_ere(prob_map, threshold=0.05, sx=1.0, sy=1.0):
    """The paper's ERE written the slow, obvious way, in float64."""
    p = np.asarray(prob_map, dtype=np.float64)
    h, w = p.shape
    best, mx, my = -1.0, 0, 0
    for y in range(h):
        for x in range(w):
            if p[y, x] > best:
                best, mx, my = p[y, x], x, y
    total, acc = 0.0, 0.0
    for y in range(h):
        for x in range(w):
            v = p[y, x] / best
            if v < threshold:
                continue
            total += v
            acc += v * math.sqrt(((x - mx) * sx)**2 + ((y - my) * sy)**2)
    return acc / total


def random_maps(shape, seed, sharpness=3.0):
    g = torch.Generator().manual_seed(seed)
    return softmax_2d(torch.randn(shape, generator=g) * sharpness)


@pytest.mark.parametrize('threshold', [0.05, 0.0, 0.3])
def test_ere_matches_slow_reference(threshold):
    probs = random_maps((2, 3, 9, 11), seed=1)
    ere = expected_radial_error(probs, threshold=threshold)
    assert ere.shape == (2, 3)
    for b in range(2):
        for k in range(3):
            ref = slow_ere(probs[b, k].numpy(), threshold)
            assert ere[b, k].item() == pytest.approx(ref, rel=1e-5)


def test_ere_anisotropic_pixel_size_and_chunking():
    probs = random_maps((5, 7, 6), seed=2, sharpness=1.0)
    ere = expected_radial_error(probs, pixel_size=(2.0, 0.5), chunk_size=2)
    for i in range(5):
        ref = slow_ere(probs[i].numpy(), sx=2.0, sy=0.5)
        assert ere[i].item() == pytest.approx(ref, rel=1e-5)


def test_ere_per_map_pixel_size():
    probs = random_maps((2, 3, 8, 8), seed=3, sharpness=1.0)
    size = torch.tensor([[0.1, 0.1], [0.3, 0.2]])[:, None, :]  # (B, 1, 2)
    ere = expected_radial_error(probs, pixel_size=size)
    for b in range(2):
        for k in range(3):
            ref = slow_ere(probs[b, k].numpy(), sx=float(size[b, 0, 0]),
                           sy=float(size[b, 0, 1]))
            assert ere[b, k].item() == pytest.approx(ref, rel=1e-5)


def test_ere_one_hot_is_zero():
    probs = torch.zeros(1, 2, 5, 5)
    probs[0, 0, 2, 3] = 1
    probs[0, 1, 0, 0] = 1
    assert torch.equal(expected_radial_error(probs), torch.zeros(1, 2))


def test_ere_hand_computed_two_peaks():
    # mode 0.6 at (x=1, y=1); 0.3 at (4, 1): distance 3; 0.08 at (3, 4):
    # distance sqrt(13); 0.02 at (1, 3) is below 5 % of 0.6 and is dropped.
    p = torch.zeros(5, 5, dtype=torch.float64)
    p[1, 1], p[1, 4], p[4, 3], p[3, 1] = 0.6, 0.3, 0.08, 0.02
    expected = (0.3 * 3 + 0.08 * math.sqrt(13)) / (0.6 + 0.3 + 0.08)
    assert expected == pytest.approx(1.2126980633031827, rel=1e-12)
    assert expected_radial_error(p).item() == pytest.approx(expected,
                                                             rel=1e-12)
    # without the threshold the 0.02 pixel (distance 2) counts too
    no_thr = (0.3 * 3 + 0.08 * math.sqrt(13) + 0.02 * 2) / 1.0
    assert expected_radial_error(p, threshold=0).item() == pytest.approx(
        no_thr, rel=1e-12)


def test_ere_rejects_bad_arguments():
    with pytest.raises(ValueError, match='threshold'):
        expected_radial_error(torch.ones(1, 3, 3), threshold=1.5)
    with pytest.raises(ValueError, match='pixel_size'):
        expected_radial_error(torch.ones(2, 3, 3), pixel_size=(1, 2, 3))


def test_softmax_2d_matches_float64_reference():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 3, 4, 5, generator=g) * 5
    t = torch.tensor([0.5, 1.0, 2.0])
    probs = softmax_2d(logits, t)
    x = logits.double().numpy() / t.double().numpy()[:, None, None]
    ref = np.empty_like(x)
    for b in range(2):
        for k in range(3):
            e = np.exp(x[b, k] - x[b, k].max())
            ref[b, k] = e / e.sum()
    np.testing.assert_allclose(probs.numpy(), ref, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(
        log_softmax_2d(logits, t).exp().numpy(), ref, rtol=1e-5, atol=1e-9)


def test_nll_at_index_matches_dense_reference():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 3, 4, 5, generator=g) * 3
    index = torch.randint(0, 20, (2, 3), generator=g)
    t = torch.tensor([0.7, 1.0, 1.9])
    nll = nll_at_index(logits, index, t)
    ref = -log_softmax_2d(logits.double(), t.double()).flatten(-2).gather(
        -1, index[..., None])[..., 0]
    np.testing.assert_allclose(nll.numpy(), ref.numpy(), rtol=1e-6)


def test_heatmap_mode_first_max_row_major():
    m = torch.zeros(1, 3, 4)
    m[0, 2, 1] = 5
    m[0, 1, 3] = 5  # earlier in row-major order
    coords, values = heatmap_mode(m)
    assert coords.tolist() == [[3.0, 1.0]]
    assert values.tolist() == [5.0]


def peaked_maps(shape, seed):
    """Contour-hugging-like maps: a rotated anisotropic bump per map, so
    few rows reach 5 % of the peak (ERE weights only those rows)."""
    g = torch.Generator().manual_seed(seed)
    *lead, h, w = shape
    n = int(np.prod(lead))
    ys = torch.arange(h, dtype=torch.float64)[:, None]
    xs = torch.arange(w, dtype=torch.float64)[None]
    maps = []
    for _ in range(n):
        cx, cy = torch.rand(2, generator=g, dtype=torch.float64) * torch.tensor(
            [w - 1.0, h - 1.0], dtype=torch.float64)
        a = torch.rand((), generator=g, dtype=torch.float64) * math.pi
        u = (xs - cx) * torch.cos(a) + (ys - cy) * torch.sin(a)
        v = -(xs - cx) * torch.sin(a) + (ys - cy) * torch.cos(a)
        maps.append(-(u / 4.0)**2 / 2 - (v / 1.5)**2 / 2)
    logits = torch.stack(maps).reshape(shape).float()
    return softmax_2d(logits)


def test_ere_few_rows_match_slow_reference():
    # 240 rows, a bump about 20 rows high: fewer than 1/8 of the rows count
    probs = peaked_maps((2, 3, 240, 40), seed=6)
    size = torch.tensor([[0.3, 0.2], [1.0, 2.0]])[:, None, :]
    ere = expected_radial_error(probs, pixel_size=size, chunk_size=4)
    for b in range(2):
        for k in range(3):
            ref = slow_ere(probs[b, k].numpy(), sx=float(size[b, 0, 0]),
                           sy=float(size[b, 0, 1]))
            assert ere[b, k].item() == pytest.approx(ref, rel=1e-5)


def dense_ere(probs, cut, size):
    """Every pixel weighted (the straightforward vectorised ERE)."""
    h, w = probs.shape[-2:]
    coords, _ = heatmap_mode(probs)
    values = torch.where(probs >= cut[:, None, None], probs, 0.0)
    xs = torch.arange(w, dtype=probs.dtype)
    ys = torch.arange(h, dtype=probs.dtype)
    dx2 = ((xs[None, None, :] - coords[:, 0, None, None]) *
           size[:, 0, None, None]).square()
    dy2 = ((ys[None, :, None] - coords[:, 1, None, None]) *
           size[:, 1, None, None]).square()
    mass = values.sum(dim=(-2, -1))
    weighted = (values * (dx2 + dy2).sqrt()).sum(dim=(-2, -1))
    return torch.where(mass > 0, weighted / mass.clamp_min(1e-30), 0.0)


def test_ere_row_path_matches_dense_weighting():
    probs = peaked_maps((5, 240, 48), seed=7)
    # ties: an equal second peak earlier in row-major order is the mode
    probs[0, 10, 40] = probs[0].max()
    probs[1] = 0  # no mass: ERE 0
    size = torch.tensor([0.5, 0.25])
    sparse = expected_radial_error(probs, pixel_size=size)
    peak = probs.flatten(-2).amax(-1)
    cut = torch.where(peak > 0, 0.05 * peak, torch.full_like(peak, 1e-45))
    dense = dense_ere(probs, cut, size.expand(5, 2))
    torch.testing.assert_close(sparse, dense, rtol=1e-5, atol=1e-6)
    assert sparse[1].item() == 0
    assert sparse[0].item() == pytest.approx(
        slow_ere(probs[0].numpy(), sx=0.5, sy=0.25), rel=1e-5)
    # half and double precision inputs give the float32 / float64 result
    assert expected_radial_error(probs.half()).dtype == torch.float32
    torch.testing.assert_close(
        expected_radial_error(probs.double()),
        expected_radial_error(probs).double(), rtol=1e-5, atol=1e-6)


def test_ere_nan_map_is_zero():
    probs = peaked_maps((2, 240, 32), seed=8)
    probs[0, 3, 3] = float('nan')
    ere = expected_radial_error(probs)
    assert ere[0].item() == 0
    assert ere[1].item() == pytest.approx(slow_ere(probs[1].numpy()),
                                          rel=1e-5)
