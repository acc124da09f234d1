"""The ResNet-34 U-Net built from MMPose parts is the paper's network."""
import pytest
import torch
from mmpose.registry import MODELS

import mmchh  # noqa: F401

DECODER = (256, 128, 64, 32, 32)


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
            head=dict(
                type='SoftmaxHeatmapHead',
                in_channels=32,
                out_channels=num_keypoints,
                deconv_out_channels=None,
                final_layer=dict(kernel_size=3, padding=1),
                decoder=dict(
                    type='SoftmaxHeatmap',
                    input_size=(64, 96),
                    heatmap_size=(64, 96)))))
    model.init_weights()
    return model


def smp_to_ours_key(key):
    """Maps a segmentation_models_pytorch Unet key to ours."""
    if key.startswith('encoder.'):
        return 'backbone.' + key[len('encoder.'):]
    if key.startswith('decoder.blocks.'):
        parts = key.split('.')  # decoder.blocks.i.convj.{0,1}.param
        layer = {'0': 'conv', '1': 'bn'}[parts[4]]
        return '.'.join(['neck.blocks', parts[2], parts[3], layer] +
                        parts[5:])
    if key.startswith('segmentation_head.0.'):
        return 'head.final_layer.' + key[len('segmentation_head.0.'):]
    raise KeyError(key)


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
    calibration = {'head.log_temperature', 'head.flag_threshold'}
    assert set(mapped) == set(mine) - calibration
    for k, v in mapped.items():
        assert mine[k].shape == v.shape, k
    # strict: the head fills in T = 1 and no threshold for a plain state
    ours.load_state_dict(mapped, strict=True)
    x = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        expected = reference(x)
        got = ours.head(ours.neck(ours.backbone(x)))
    assert got.shape == expected.shape == (2, 19, 96, 64)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
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
    with pytest.raises(ValueError, match='one decoder block per encoder'):
        MODELS.build(dict(type='UNetDecoder', in_channels=(1, 2)))
