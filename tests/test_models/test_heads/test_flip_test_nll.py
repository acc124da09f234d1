"""Flip test on a left/right-symmetric task does not worsen the NLL.

A real model (ResNet-18 U-Net, heatmaps at 1/4 of a 64x64 input) is trained
for a few dozen steps on generated images with two "eyes" mirrored about a
"nose"; the left eye is the one on the image's left, so under a horizontal
flip the two swap (flip_indices [1, 0, 2]). On held-out images the NLL of
the flip-test mixture is compared with the plain pass.
"""
import numpy as np
import torch
from mmengine.structures import InstanceData
from mmpose.registry import MODELS
from mmpose.structures import PoseDataSample

import mmchh  # noqa: F401
from mmchh.codecs import SoftmaxHeatmap

SIZE = 64
FLIP = [1, 0, 2]
STEPS = 30


def _blob(img, x, y, sigma, value):
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    img += value * np.exp(-((xs - x)**2 + (ys - y)**2) / (2 * sigma**2))


def make_set(n, seed):
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 3, SIZE, SIZE), np.float32)
    kpts = np.zeros((n, 3, 2), np.float32)
    for i in range(n):
        # symmetric about the flip axis x = (SIZE - 1) / 2
        cx, cy = (SIZE - 1) / 2 + rng.uniform(-10, 10), rng.uniform(16, 36)
        d, e = rng.uniform(8, 14), rng.uniform(10, 18)
        pts = [(cx - d, cy), (cx + d, cy), (cx, cy + e)]
        img = rng.normal(0, 0.1, (SIZE, SIZE))
        _blob(img, *pts[0], 2.0, 1.0)
        _blob(img, *pts[1], 2.0, 1.0)
        _blob(img, *pts[2], 3.5, -1.0)
        images[i] = img[None]
        kpts[i] = pts
    return torch.from_numpy(images), kpts


def samples_for(kpts, codec):
    out = []
    for p in kpts:
        enc = codec.encode(p[None], np.ones((1, 3), np.float32))
        s = PoseDataSample(
            metainfo=dict(
                input_size=(SIZE, SIZE),
                input_center=np.array([SIZE / 2, SIZE / 2]),
                input_scale=np.array([float(SIZE), float(SIZE)]),
                flip_indices=FLIP))
        s.gt_instance_labels = InstanceData(
            heatmap_indices=torch.as_tensor(enc['heatmap_indices']),
            keypoint_weights=torch.as_tensor(enc['keypoint_weights']))
        s.gt_instances = InstanceData(
            keypoints=p[None],
            keypoints_visible=np.ones((1, 3), np.float32),
            bboxes=np.array([[0, 0, SIZE, SIZE]], np.float32),
            bbox_scores=np.ones(1, np.float32))
        out.append(s)
    return out


def test_flip_test_mixture_does_not_worsen_nll():
    torch.manual_seed(0)
    codec_cfg = dict(
        type='SoftmaxHeatmap', input_size=(SIZE, SIZE), heatmap_size=(16, 16))
    # a narrow ResNet-18 (16 base channels): seconds on a CPU
    backbone = dict(
        type='ResNetWithStem',
        depth=18,
        stem_channels=16,
        base_channels=16,
        init_cfg=None)
    model = MODELS.build(
        dict(
            type='TopdownPoseEstimator',
            backbone=backbone,
            neck=dict(
                type='UNetDecoder',
                backbone=backbone,
                decoder_channels=(32, 16, 16)),
            head=dict(
                type='SoftmaxHeatmapHead',
                in_channels=16,
                out_channels=3,
                deconv_out_channels=None,
                final_layer=dict(kernel_size=3, padding=1),
                decoder=codec_cfg),
            test_cfg=dict(flip_test=False)))
    codec = SoftmaxHeatmap(**{k: v for k, v in codec_cfg.items()
                              if k != 'type'})
    train_x, train_k = make_set(96, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=4e-3)
    model.train()
    g = torch.Generator().manual_seed(0)
    for step in range(STEPS):
        idx = torch.randperm(96, generator=g)[:16]
        losses = model(train_x[idx], samples_for(train_k[idx.numpy()], codec),
                       mode='loss')
        opt.zero_grad()
        losses['loss_kpt'].backward()
        opt.step()
    assert losses['loss_kpt'].item() < np.log(256) - 1  # it learned

    # enough held-out images that the comparison is not sampling noise
    test_x, test_k = make_set(96, seed=2)
    model.eval()
    nll = {}
    with torch.no_grad():
        for flip in (False, True):
            model.test_cfg['flip_test'] = flip
            preds = model(test_x, samples_for(test_k, codec), mode='predict')
            nll[flip] = np.concatenate(
                [p.pred_instances.keypoint_nll for p in preds])
        # the flipped pass alone, flipped back (eyes swapped), for Jensen
        head = model.head
        index = torch.as_tensor(
            np.stack([codec.encode(k[None])['heatmap_indices'][0]
                      for k in test_k]))
        p_plain = head.probabilities(head(model.extract_feat(test_x)))
        p_flip = head.probabilities(
            head(model.extract_feat(test_x.flip(-1)))).flip(-1)[:, FLIP]
        a = p_plain.flatten(-2).gather(-1, index[..., None])[..., 0]
        b = p_flip.flatten(-2).gather(-1, index[..., None])[..., 0]
    nll_a, nll_b = -a.log().numpy(), -b.log().numpy()
    np.testing.assert_allclose(nll[False], nll_a, rtol=1e-4, atol=1e-5)
    # the head's flip test is the mixture of the two distributions ...
    np.testing.assert_allclose(
        nll[True], -np.log((a.numpy() + b.numpy()) / 2), rtol=1e-4,
        atol=1e-5)
    # ... so (Jensen) never worse than the mean of the two passes' NLLs
    assert (nll[True] <= (nll_a + nll_b) / 2 + 1e-5).all()
    # and on this symmetric task not worse than the plain pass
    print(f'NLL plain {nll[False].mean():.3f}, flipped pass '
          f'{nll_b.mean():.3f}, flip test {nll[True].mean():.3f}')
    assert nll[True].mean() <= nll[False].mean()
