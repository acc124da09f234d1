"""The ResNet-34 U-Net built from MMPose parts is the paper's network."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmpose.registry import MODELS

import mmchh  # noqa: F401
from mmchh.testing.smp_unet import smp_to_ours_key
from mmchh.models.heads.calibration_buffers import CALIBRATION_STATE_NAMES

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
#: The paper config's model: its decoder and head are what these tests
#: compare with the reference U-Net (read, not restated, so the config is
#: what is checked).
PAPER_MODEL = Config.fromfile(
    osp.join(REPO, 'configs', 'ceph', 'unet_r34_onehot.py')).model
DECODER = tuple(PAPER_MODEL.neck.decoder_channels)


def build_ours(depth=34, num_keypoints=19, in_channels=(64, 64, 128, 256,
                                                        512)):
    model = MODELS.build(
        dict(
            type='TopdownPoseEstimator',
            backbone=dict(type='ResNetWithStem', depth=depth),
            neck=dict(
                type='UNetDecoder',
                in_channels=in_channels,
                decoder_channels=DECODER),
            # the paper config's head, on a small grid
            head=dict(
                PAPER_MODEL.head,
                out_channels=num_keypoints,
                decoder=dict(
                    type='SoftmaxHeatmap',
                    input_size=(64, 96),
                    heatmap_size=(64, 96)))))
    model.init_weights()
    return model


@pytest.mark.parametrize('depth', [34, 18])
def test_same_logits_as_smp_unet(depth):
    smp = pytest.importorskip('segmentation_models_pytorch')
    torch.manual_seed(0)
    reference = smp.Unet(
        f'resnet{depth}',
        encoder_weights=None,
        decoder_channels=DECODER,
        classes=19).eval()
    ours = build_ours(depth).eval()
    # copy smp -> ours, every tensor exactly once
    theirs = reference.state_dict()
    mine = ours.state_dict()
    mapped = {smp_to_ours_key(k): v for k, v in theirs.items()}
    calibration = {'head.' + n for n in CALIBRATION_STATE_NAMES}
    assert set(mapped) == set(mine) - calibration
    for k, v in mapped.items():
        assert mine[k].shape == v.shape, k
    # strict: the head fills in T = 1 and no threshold for a plain state
    ours.load_state_dict(mapped, strict=True)
    # float64: the decoder folds the upsampling into its first convs (the
    # same sums in another order), so equality is checked where rounding
    # cannot hide a wrong term
    reference.double()
    ours.double()
    x = torch.randn(2, 3, 96, 64, dtype=torch.float64)
    with torch.no_grad():
        expected = reference(x)
        got = ours.head(ours.neck(ours.backbone(x)))
    assert got.shape == expected.shape == (2, 19, 96, 64)
    assert any(b.fold_upsample for b in ours.neck.blocks)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    n_ours = sum(p.numel() for p in ours.parameters())
    n_smp = sum(p.numel() for p in reference.parameters())
    assert n_ours == n_smp


def test_resnet50_encoder_channels_and_size_check():
    model = build_ours(50, in_channels=(64, 256, 512, 1024, 2048)).eval()
    feats = model.backbone(torch.randn(1, 3, 64, 32))
    assert [f.shape[1] for f in feats] == [64, 256, 512, 1024, 2048]
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 2, 1]
    out = model.neck(feats)
    assert out[0].shape == (1, 32, 64, 32)
    with pytest.raises(ValueError, match='divisible by 32'):
        model.backbone(torch.randn(1, 3, 60, 32))
    with pytest.raises(ValueError, match='exactly one of backbone'):
        MODELS.build(dict(type='UNetDecoder'))
    with pytest.raises(ValueError, match='beyond the input'):
        MODELS.build(
            dict(
                type='UNetDecoder',
                in_channels=(1, 2),
                decoder_channels=(8, 8, 8)))


@pytest.mark.parametrize('backbone,channels,strides', [
    (dict(type='ResNetWithStem', depth=18), [64, 64, 128, 256, 512],
     [2, 4, 8, 16, 32]),
    (dict(type='ResNetWithStem', depth=34), [64, 64, 128, 256, 512],
     [2, 4, 8, 16, 32]),
    (dict(type='ResNetWithStem', depth=50), [64, 256, 512, 1024, 2048],
     [2, 4, 8, 16, 32]),
    (dict(type='ResNet', depth=50, out_indices=(0, 1, 2, 3)),
     [256, 512, 1024, 2048], [4, 8, 16, 32]),
    (dict(type='MobileNetV2', out_indices=(1, 2, 4, 7)),
     [24, 32, 96, 1280], [4, 8, 16, 32]),
])
def test_channels_are_read_from_the_backbone(backbone, channels, strides):
    """The same neck config works on any multi-scale backbone: channels and
    strides come from the backbone, and the output lands at the expected
    stride with every matching feature used as a skip."""
    neck = MODELS.build(
        dict(type='UNetDecoder', backbone=backbone,
             decoder_channels=(32, 16, 16)))
    assert list(neck.in_channels) == channels
    assert list(neck.in_strides) == strides
    # three blocks from stride 32: 16, 8, 4 -- each has its skip
    assert neck.out_stride == 4
    assert neck.skip_index == [len(strides) - 2, len(strides) - 3,
                               len(strides) - 4]
    net = MODELS.build(dict(backbone, init_cfg=None))
    net.eval()
    x = torch.randn(1, 3, 96, 64)
    with torch.no_grad():
        out = neck(net(x))
    assert out[0].shape == (1, 16, 24, 16)
    # a full-resolution decoder on the same backbone
    full = MODELS.build(
        dict(type='UNetDecoder', backbone=backbone,
             decoder_channels=(64, 32, 16, 16, 16)))
    assert full.out_stride == 1
    with torch.no_grad():
        assert full(net(x))[0].shape == (1, 16, 96, 64)
    # blocks without a matching feature run without a skip
    assert full.skip_index[-1] is None


def test_probed_channels_equal_the_hand_written_ones():
    by_hand = build_ours(34)
    probed = MODELS.build(
        dict(type='UNetDecoder', backbone=dict(type='ResNetWithStem',
                                               depth=34),
             decoder_channels=DECODER))
    assert {k: v.shape for k, v in probed.state_dict().items()} == {
        k[len('neck.'):]: v.shape
        for k, v in by_hand.state_dict().items() if k.startswith('neck.')
    }


def test_wrong_feature_count_names_the_fix():
    neck = MODELS.build(
        dict(type='UNetDecoder', in_channels=(4, 8),
             decoder_channels=(8, 8)))
    with pytest.raises(ValueError, match='backbone=<the backbone config>'):
        neck((torch.zeros(1, 8, 2, 2), ))
    with pytest.raises(ValueError, match='shallowest first'):
        MODELS.build(
            dict(type='UNetDecoder', in_channels=(4, 8), in_strides=(8, 4),
                 decoder_channels=(8, )))


def test_probing_the_backbone_leaves_the_seeded_init_alone():
    """A seeded neck gets the same weights whether its channels are probed
    or written by hand (the probe's own random init is sandboxed)."""
    torch.manual_seed(3)
    probed = MODELS.build(
        dict(type='UNetDecoder', backbone=dict(type='ResNetWithStem',
                                               depth=18))).state_dict()
    after_probe = torch.rand(3)
    torch.manual_seed(3)
    by_hand = MODELS.build(
        dict(type='UNetDecoder',
             in_channels=(64, 64, 128, 256, 512))).state_dict()
    assert torch.equal(torch.rand(3), after_probe)
    for k in by_hand:
        assert torch.equal(probed[k], by_hand[k]), k


@pytest.mark.parametrize('with_cp', [False, True], ids=['plain', 'with_cp'])
@pytest.mark.parametrize('size', [(64, 96), (68, 92)],
                         ids=['doubling', 'odd_sizes'])
def test_folded_upsampling_trains_exactly_as_unfolded(with_cp, size):
    """Folding the x2 upsampling into the first conv changes the sums'
    order only: one float64 training step gives the same output, input
    and weight gradients and BN running statistics (with odd sizes the
    blocks whose skip is not twice their input fall back)."""
    channels = (4, 6, 8, 10, 12)
    cfg = dict(type='UNetDecoder', in_channels=channels,
               decoder_channels=(8, 6, 4, 4, 4), with_cp=with_cp)
    torch.manual_seed(0)
    unfolded = MODELS.build(dict(cfg, fold_upsample_max_channels=0))
    folded = MODELS.build(dict(cfg, fold_upsample_max_channels=10))
    assert [b.fold_upsample for b in unfolded.blocks] == [False] * 5
    # the upsampled input of block j has the previous block's channels
    assert [b.fold_upsample for b in folded.blocks] == [False] + [True] * 4
    folded.load_state_dict(unfolded.state_dict())
    g = torch.Generator().manual_seed(1)
    w, h = size
    feats = [
        torch.randn(2, c, -(-h // 2**(i + 1)), -(-w // 2**(i + 1)),
                    generator=g, dtype=torch.float64)
        for i, c in enumerate(channels)
    ]
    results = []
    for net in (unfolded, folded):
        net.double().train()
        inputs = [f.clone().requires_grad_() for f in feats]
        out = net(tuple(inputs))[0]
        weight = torch.randn(out.shape, generator=torch.Generator(
        ).manual_seed(2), dtype=out.dtype)
        (out * weight).sum().backward()
        results.append((out.detach(), [t.grad for t in inputs],
                        {n: p.grad for n, p in net.named_parameters()},
                        dict(net.named_buffers())))
    (out_a, in_a, par_a, buf_a), (out_b, in_b, par_b, buf_b) = results
    torch.testing.assert_close(out_b, out_a, rtol=1e-10, atol=1e-12)
    for a, b in zip(in_a, in_b):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)
    for n in par_a:
        torch.testing.assert_close(par_b[n], par_a[n], rtol=1e-9,
                                   atol=1e-12, msg=n)
    for n in buf_a:
        torch.testing.assert_close(buf_b[n], buf_a[n], rtol=1e-12,
                                   atol=1e-12, msg=n)
