import numpy as np
import pytest
import torch

from mmchh.codecs import SoftmaxHeatmap
from mmchh.evaluation.functional import expected_radial_error, softmax_2d


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
    keypoints = cells * codec.scale_factor
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
    # low resolution: scale 4, pixel j covers [4j - 2, 4j + 2)
    low = SoftmaxHeatmap(input_size=(40, 32), heatmap_size=(10, 8))
    enc = low.encode(np.array([[[5.99, 0], [6.0, 0], [-2.0, 0],
                                [-2.01, 0]]]))
    assert (enc['heatmap_indices'][0] % 10).tolist()[:3] == [1, 2, 0]
    assert enc['keypoint_weights'][0].tolist() == [1, 1, 1, 0]


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
        np.testing.assert_array_equal(k[0, :, 0], (arg % 12) * 4)
        np.testing.assert_array_equal(k[0, :, 1], (arg // 12) * 4)
        np.testing.assert_array_equal(s[0], flat.max(-1))
    # MMPose's two-value interface by default
    assert len(codec.batch_decode(probs)) == 2
    assert len(codec.decode(probs[0].numpy())) == 2
