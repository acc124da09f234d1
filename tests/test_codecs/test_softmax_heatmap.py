import numpy as np
import pytest
import torch

from mmchh.codecs import SoftmaxHeatmap
from mmchh.codecs.utils import expected_radial_error, softmax_2d


def one_hot_maps(codec, encoded):
    w, h = codec.heatmap_size
    n, k = encoded['heatmap_indices'].shape
    maps = np.zeros((n, k, h * w), dtype=np.float32)
    for i in range(n):
        for j in range(k):
            maps[i, j, encoded['heatmap_indices'][i, j]] = 1
    return maps.reshape(n, k, h, w)


@pytest.mark.parametrize('input_size,heatmap_size',
                         [((20, 16), (20, 16)), ((64, 48), (16, 12))])
def test_round_trip_on_pixel_centres(input_size, heatmap_size):
    codec = SoftmaxHeatmap(input_size=input_size, heatmap_size=heatmap_size)
    rng = np.random.default_rng(0)
    cells = np.stack([
        rng.integers(0, heatmap_size[0], (2, 7)),
        rng.integers(0, heatmap_size[1], (2, 7))
    ], axis=-1)
    # pixel centres: (u + 0.5) * s - 0.5, written out by hand
    keypoints = (cells + 0.5) * codec.scale_factor - 0.5
    encoded = codec.encode(keypoints, np.ones((2, 7)))
    assert encoded['heatmap_indices'].dtype == np.int64
    assert encoded['heatmap_indices'].shape == (2, 7)
    np.testing.assert_array_equal(
        encoded['heatmap_indices'], cells[..., 1] * heatmap_size[0] +
        cells[..., 0])
    np.testing.assert_array_equal(encoded['keypoint_weights'], 1)
    maps = one_hot_maps(codec, encoded)
    for i in range(2):
        decoded, scores = codec.decode(maps[i])
        np.testing.assert_array_equal(decoded[0], keypoints[i])
        np.testing.assert_array_equal(scores, 1)


def test_rounding_at_pixel_borders():
    codec = SoftmaxHeatmap(input_size=(10, 8), heatmap_size=(10, 8))
    xs = [2.49, 2.5, -0.5, -0.51, 9.49, 9.5, 0.0]
    kpts = np.array([[[x, 3.0] for x in xs]])
    enc = codec.encode(kpts)
    col = enc['heatmap_indices'][0] % 10
    w = enc['keypoint_weights'][0]
    assert col[:2].tolist() == [2, 3]  # half-way goes up
    assert (col[2], w[2]) == (0, 1)  # -0.5 rounds into pixel 0
    assert w[3] == 0  # -0.51 rounds to -1: outside
    assert (col[4], w[4]) == (9, 1)
    assert w[5] == 0  # 9.5 rounds to 10 = W: outside
    # low resolution: scale 4, pixel j covers the input pixels 4j .. 4j+3,
    # i.e. [4j - 0.5, 4j + 3.5)
    low = SoftmaxHeatmap(input_size=(40, 32), heatmap_size=(10, 8))
    enc = low.encode(np.array([[[3.49, 0], [3.5, 0], [-0.5, 0], [-0.51, 0],
                                [39.49, 31.49], [39.5, 0], [0, 31.5]]]))
    assert (enc['heatmap_indices'][0] % 10).tolist()[:3] == [0, 1, 0]
    assert enc['heatmap_indices'][0][4] == 7 * 10 + 9
    assert enc['keypoint_weights'][0].tolist() == [1, 1, 1, 0, 1, 0, 0]


def test_weights_invisible_and_out_of_bounds_never_wrap():
    codec = SoftmaxHeatmap(input_size=(8, 6), heatmap_size=(8, 6))
    kpts = np.array([[[1, 1], [2, 2], [8, 2], [2, 6], [-3, -3], [np.nan, 1],
                      [1e12, 1e12], [7, 5]]], dtype=np.float64)
    vis = np.array([[1, 0, 1, 1, 1, 1, 1, 1]], dtype=np.float32)
    enc = codec.encode(kpts, vis)
    assert enc['keypoint_weights'][0].tolist() == [1, 0, 0, 0, 0, 0, 0, 1]
    idx = enc['heatmap_indices'][0]
    assert ((idx >= 0) & (idx < 48)).all()
    assert idx[0] == 9 and idx[-1] == 47


def test_encode_rejects_bad_shapes():
    codec = SoftmaxHeatmap(input_size=(8, 6), heatmap_size=(8, 6))
    with pytest.raises(ValueError, match='keypoints of shape'):
        codec.encode(np.zeros((3, 2)))
    with pytest.raises(ValueError, match='input_size'):
        SoftmaxHeatmap(input_size=(0, 6), heatmap_size=(8, 6))
    with pytest.raises(ValueError, match=r'\(B, K, 6, 8\)'):
        codec.decode_tensors(torch.zeros(1, 2, 8, 6))


def test_batch_decode_equals_decode_and_ere_in_input_pixels():
    codec = SoftmaxHeatmap(input_size=(48, 40), heatmap_size=(12, 10))
    g = torch.Generator().manual_seed(0)
    probs = softmax_2d(torch.randn(3, 4, 10, 12, generator=g) * 2)
    kb, sb, eb = codec.batch_decode(probs, return_ere=True)
    assert len(kb) == 3 and kb[0].shape == (1, 4, 2) and eb[0].shape == (1,
                                                                         4)
    ere_ref = expected_radial_error(probs, pixel_size=4.0)
    for i in range(3):
        k, s, e = codec.decode(probs[i].numpy(), return_ere=True)
        np.testing.assert_array_equal(k, kb[i])
        np.testing.assert_array_equal(s, sb[i])
        np.testing.assert_allclose(e, eb[i], rtol=1e-6)
        np.testing.assert_allclose(e[0], ere_ref[i].numpy(), rtol=1e-6)
        # mode and its probability, checked the obvious way
        flat = probs[i].reshape(4, -1).numpy()
        arg = flat.argmax(-1)
        np.testing.assert_array_equal(k[0, :, 0], (arg % 12) * 4 + 1.5)
        np.testing.assert_array_equal(k[0, :, 1], (arg // 12) * 4 + 1.5)
        np.testing.assert_array_equal(s[0], flat.max(-1))
    # MMPose's two-value interface by default
    assert len(codec.batch_decode(probs)) == 2
    assert len(codec.decode(probs[0].numpy())) == 2


@pytest.mark.parametrize('input_size,heatmap_size',
                         [((192, 256), (48, 64)), ((40, 30), (40, 30)),
                          ((100, 60), (30, 20))])
def test_every_point_of_the_input_has_a_pixel_and_decodes_unbiased(
        input_size, heatmap_size):
    """Low resolution: every point of the image is kept, the decode of its
    pixel is within half a pixel per axis and unbiased on average."""
    codec = SoftmaxHeatmap(input_size=input_size, heatmap_size=heatmap_size)
    rng = np.random.default_rng(1)
    w_in, h_in = input_size
    pts = np.stack([rng.uniform(-0.5, w_in - 0.5 - 1e-9, 20000),
                    rng.uniform(-0.5, h_in - 0.5 - 1e-9, 20000)], -1)
    enc = codec.encode(pts[None])
    assert (enc['keypoint_weights'] == 1).all()
    idx = enc['heatmap_indices'][0]
    w, h = heatmap_size
    sx, sy = w_in / w, h_in / h
    # slow and obvious: the pixel u whose input block [u*s-0.5, (u+1)*s-0.5)
    # holds the point, decoded to the block's middle
    u_ref = np.array([int(np.floor((x + 0.5) / sx)) for x in pts[:, 0]])
    v_ref = np.array([int(np.floor((y + 0.5) / sy)) for y in pts[:, 1]])
    np.testing.assert_array_equal(idx, v_ref * w + u_ref)
    centre = np.stack([u_ref * sx + (sx - 1) / 2, v_ref * sy + (sy - 1) / 2],
                      -1)
    one_hot = torch.zeros(1, len(idx), h * w)
    one_hot[0, torch.arange(len(idx)), torch.as_tensor(idx)] = 1
    kpts, _, _ = codec.decode_tensors(one_hot.view(1, -1, h, w))
    np.testing.assert_allclose(kpts[0].numpy(), centre, atol=1e-4)
    err = kpts[0].numpy().astype(np.float64) - pts
    assert (np.abs(err) <= np.array([sx, sy]) / 2 + 1e-4).all()
    np.testing.assert_allclose(err.mean(0), 0, atol=0.03 * max(sx, sy))


def test_horizontal_flip_maps_pixels_exactly():
    """A mirrored input point lands in the mirrored heatmap pixel, so flip
    test needs no shift."""
    codec = SoftmaxHeatmap(input_size=(192, 256), heatmap_size=(48, 64))
    rng = np.random.default_rng(2)
    pts = np.stack([rng.uniform(-0.5, 191.49, 500),
                    rng.uniform(-0.5, 255.49, 500)], -1)
    mirrored = pts.copy()
    mirrored[:, 0] = 191 - pts[:, 0]  # input pixel x <-> W_in - 1 - x
    a = codec.encode(pts[None])['heatmap_indices'][0]
    b = codec.encode(mirrored[None])['heatmap_indices'][0]
    # off exact block borders the mirror of pixel u is pixel 47 - u
    on_border = np.isclose(((pts[:, 0] + 0.5) / 4) % 1, 0)
    np.testing.assert_array_equal((a // 48)[~on_border], (b // 48)[~on_border])
    np.testing.assert_array_equal((a % 48)[~on_border],
                                  47 - (b % 48)[~on_border])


def test_subpixel_decode_changes_only_positions():
    codec = SoftmaxHeatmap(input_size=(48, 40), heatmap_size=(12, 10))
    sub = SoftmaxHeatmap(input_size=(48, 40), heatmap_size=(12, 10),
                         subpixel_radius=1)
    g = torch.Generator().manual_seed(3)
    probs = softmax_2d(torch.randn(2, 5, 10, 12, generator=g) * 3)
    k0, s0, e0 = codec.decode_tensors(probs)
    k1, s1, e1 = sub.decode_tensors(probs)
    assert torch.equal(s0, s1) and torch.equal(e0, e1)
    # slow reference: weighted mean of the 3x3 window (clipped at borders)
    p = probs.double().numpy()
    for b in range(2):
        for j in range(5):
            m = p[b, j]
            y0, x0 = np.unravel_index(m.argmax(), m.shape)
            num, den = np.zeros(2), 0.0
            for y in range(y0 - 1, y0 + 2):
                for x in range(x0 - 1, x0 + 2):
                    if 0 <= x < 12 and 0 <= y < 10:
                        num += m[y, x] * np.array([x, y])
                        den += m[y, x]
            ref = (num / den + 0.5) * 4 - 0.5
            np.testing.assert_allclose(k1[b, j].numpy(), ref, atol=1e-4)
    with pytest.raises(ValueError, match='subpixel_radius'):
        SoftmaxHeatmap(input_size=(8, 8), heatmap_size=(8, 8),
                       subpixel_radius=-1)


def test_subpixel_decode_hand_computed():
    """Two neighbouring pixels with 3/4 and 1/4 of the mass: the refined
    position is a quarter pixel from the mode towards the other one."""
    codec = SoftmaxHeatmap(input_size=(16, 16), heatmap_size=(4, 4),
                           subpixel_radius=1)
    probs = torch.zeros(1, 1, 4, 4)
    probs[0, 0, 1, 2] = 0.75
    probs[0, 0, 1, 3] = 0.25
    k, s, _ = codec.decode_tensors(probs)
    # heatmap x = 2.25 -> input (2.25 + 0.5) * 4 - 0.5 = 10.5; y = 1 -> 5.5
    np.testing.assert_allclose(k[0, 0].numpy(), [10.5, 5.5])
    assert float(s[0, 0]) == 0.75


def test_annotator_targets_against_slow_reference():
    codec = SoftmaxHeatmap(input_size=(40, 32), heatmap_size=(10, 8),
                           annotator_targets=True)
    assert 'heatmap_index_weights' in codec.label_mapping_table
    rng = np.random.default_rng(4)
    n, a, k = 2, 3, 5
    ann = rng.uniform(-0.5, 39.4, (n, a, k, 2))
    ann[0, 1, 0] = ann[0, 0, 0]  # coincident: the masses add up
    ann[0, 2, 1] = [100.0, 3.0]  # outside: dropped, the rest renormalised
    ann[1, :, 2] = np.nan  # nobody: the keypoint does not count
    vis = np.ones((n, k), np.float32)
    vis[1, 3] = 0
    enc = codec.encode(np.zeros((n, k, 2)), vis,
                       transformed_annotator_keypoints=ann)
    idx, mass = enc['heatmap_indices'], enc['heatmap_index_weights']
    assert idx.shape == mass.shape == (n, k, a) and idx.dtype == np.int64
    for i in range(n):
        for j in range(k):
            target = {}
            for t in range(a):
                x, y = ann[i, t, j]
                if not (np.isfinite(x) and np.isfinite(y)) or not vis[i, j]:
                    continue
                u, v = int(np.floor((x + 0.5) / 4)), int(np.floor(
                    (y + 0.5) / 4))
                if 0 <= u < 10 and 0 <= v < 8:
                    target[v * 10 + u] = target.get(v * 10 + u, 0) + 1
            got = {}
            for t in range(a):
                if mass[i, j, t] > 0:
                    got[idx[i, j, t]] = got.get(idx[i, j, t],
                                                0) + mass[i, j, t]
            total = sum(target.values())
            assert enc['keypoint_weights'][i, j] == (1.0 if total else 0.0)
            assert set(got) == set(target)
            for key in target:
                assert got[key] == pytest.approx(target[key] / total)
    assert mass[0, 1].sum() == pytest.approx(1.0)  # renormalised over 2
    # missing annotator points: a clear error naming the pipeline fix
    with pytest.raises(ValueError, match='AttachAnnotatorKeypoints'):
        codec.encode(np.zeros((1, k, 2)))
