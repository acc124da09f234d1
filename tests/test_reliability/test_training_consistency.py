"""Codec and loss refuse inconsistent targets instead of training on them
(a model trained on a target it does not decode is silently wrong): a
GenerateTarget codec that differs from the head's decoder fails at the
first training step of a real Runner, naming both grids; the loss rejects
indices outside the map, float indices and negative / non-finite weights
and masses instead of clamping them."""
import numpy as np
import pytest
import torch

import mmchh  # noqa: F401
from mmchh.codecs import SoftmaxHeatmap
from mmchh.models.losses import SoftmaxNLLLoss
from mmchh.testing import tiny_runner_cfg
from mmchh.utils.errors import InputError


def _runner(tmp_path, codec_heatmap=(16, 16), codec_input=(64, 64)):
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = tiny_runner_cfg(str(tmp_path / 'data'), str(tmp_path / 'work'),
                          max_epochs=1)
    # the head keeps its 16x16 decoder; only the training targets change
    encoder = dict(type='SoftmaxHeatmap', input_size=codec_input,
                   heatmap_size=codec_heatmap)
    pipeline = cfg['train_dataloader']['dataset']['pipeline']
    pipeline[3] = dict(type='GenerateTarget', encoder=encoder)
    cfg['val_cfg'] = cfg['val_dataloader'] = cfg['val_evaluator'] = None
    cfg['default_hooks'].pop('checkpoint')
    return Runner.from_cfg(Config(cfg))


@pytest.mark.parametrize('heatmap,inp', [((32, 32), (64, 64)),
                                         ((16, 16), (128, 128))])
def test_codec_mismatch_fails_at_first_training_step(tmp_path, heatmap, inp):
    runner = _runner(tmp_path, heatmap, inp)
    seen = []
    orig = runner.model.head.loss_module.forward

    def spy(*args, **kwargs):
        seen.append(1)
        return orig(*args, **kwargs)

    runner.model.head.loss_module.forward = spy
    with pytest.raises(InputError) as exc:
        runner.train()
    msg = str(exc.value)
    assert f'{heatmap[0]}x{heatmap[1]} heatmap of a {inp[0]}x{inp[1]}' in msg
    assert '16x16 heatmap of a 64x64' in msg
    assert 'GenerateTarget(encoder=...) in train_pipeline must equal ' \
        'model.head.decoder' in msg
    assert not seen  # refused before any loss was computed
    assert '\n' not in msg


def test_matching_codec_trains_and_carries_its_grid(tmp_path):
    runner = _runner(tmp_path)
    runner.train()  # one epoch of the tiny set, no error
    codec = SoftmaxHeatmap(input_size=(64, 48), heatmap_size=(16, 12))
    enc = codec.encode(np.zeros((2, 3, 2)))
    assert enc['heatmap_grid'].tolist() == [[16, 12, 64, 48]] * 2
    assert codec.label_mapping_table['heatmap_grid'] == 'heatmap_grid'
    multi = SoftmaxHeatmap(input_size=(64, 48), heatmap_size=(16, 12),
                           annotator_targets=True)
    enc = multi.encode(np.zeros((1, 3, 2)), np.ones((1, 3)),
                       np.zeros((1, 2, 3, 2)))
    assert enc['heatmap_grid'].shape == (1, 4)
    assert {'heatmap_grid', 'heatmap_index_weights'} <= set(
        multi.label_mapping_table)


def test_head_rejects_logits_of_another_size():
    from mmengine.structures import InstanceData
    from mmpose.structures import PoseDataSample
    from mmpose.registry import MODELS
    head = MODELS.build(dict(
        type='SoftmaxHeatmapHead', in_channels=4, out_channels=2,
        deconv_out_channels=None, decoder=dict(
            type='SoftmaxHeatmap', input_size=(32, 32),
            heatmap_size=(16, 16))))
    sample = PoseDataSample()
    sample.gt_instance_labels = InstanceData(
        heatmap_indices=torch.zeros(1, 2, dtype=torch.long),
        keypoint_weights=torch.ones(1, 2))
    with pytest.raises(InputError, match=r'outputs 8x8 .*heatmap_size=\(16, '
                       r'16\)'):
        head.loss((torch.zeros(1, 4, 8, 8), ), [sample])


@pytest.mark.parametrize('bad', [1000, 64, -1])
def test_loss_rejects_indices_outside_the_map(bad):
    loss = SoftmaxNLLLoss()
    logits = torch.zeros(2, 3, 8, 8, requires_grad=True)
    target = torch.tensor([[0, 5, 63], [1, 2, 3]])
    target[1, 2] = bad
    with pytest.raises(InputError) as exc:
        loss(logits, target, torch.ones(2, 3))
    msg = str(exc.value)
    assert f'target index {bad} at (1, 2)' in msg and '8x8' in msg
    assert '0..63' in msg


def test_loss_rejects_float_indices_and_bad_weights():
    loss = SoftmaxNLLLoss()
    logits = torch.zeros(1, 2, 8, 8)
    with pytest.raises(InputError, match=r'integers.*8x8.*torch.float32'):
        loss(logits, torch.tensor([[1.0, 2.7]]), torch.ones(1, 2))
    target = torch.tensor([[1, 2]])
    for value, shown in ((-1.0, '-1.0'), (float('nan'), 'nan'),
                         (float('inf'), 'inf')):
        with pytest.raises(InputError) as exc:
            loss(logits, target, torch.tensor([[1.0, value]]))
        assert 'target_weights' in str(exc.value) and shown in str(exc.value)
        assert '8x8' in str(exc.value)
    # distribution targets: masses are checked the same way
    index = torch.tensor([[[1, 2], [3, 4]]])
    with pytest.raises(InputError, match=r'target_mass .*-0\.5'):
        loss(logits, index, torch.ones(1, 2),
             torch.tensor([[[1.5, -0.5], [0.5, 0.5]]]))
    with pytest.raises(InputError, match='target index 99'):
        loss(logits, index.clone().fill_(99), torch.ones(1, 2),
             torch.full((1, 2, 2), 0.5))
    # valid targets still give the NLL and its fused gradient
    x = torch.randn(1, 2, 8, 8, requires_grad=True)
    value = loss(x, target, torch.ones(1, 2))
    value.backward()
    ref = (torch.logsumexp(x.detach().flatten(-2), -1) -
           x.detach().flatten(-2).gather(-1, target[..., None])[..., 0])
    assert value.item() == pytest.approx(ref.mean().item(), rel=1e-6)
    assert torch.isfinite(x.grad).all()
