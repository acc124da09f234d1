"""The memory mode (``with_cp=True``) changes memory, never the numbers:
one training step of a float64 network with checkpointing gives the same
outputs, gradients and BN running statistics as one without, for the
U-Net decoder, the backbone and the whole paper network."""
import pytest
import torch
from mmpose.registry import MODELS

import mmchh  # noqa: F401
from mmchh.models.utils import checkpoint_train, frozen_running_stats

IN_CHANNELS = (4, 6, 8, 10, 12)  # a ResNetWithStem-like pyramid


def _features(batch=2, size=(64, 96), seed=0):
    g = torch.Generator().manual_seed(seed)
    w, h = size
    return tuple(
        torch.randn(batch, c, h // 2**(i + 1), w // 2**(i + 1), generator=g,
                    dtype=torch.float64).requires_grad_()
        for i, c in enumerate(IN_CHANNELS))


def _step(module, fn, inputs, weight_seed=1):
    """One training forward ``fn(*inputs)`` of ``module`` + backward of a
    fixed random objective; returns (output, input grads, parameter grads,
    buffers)."""
    out = fn(*inputs)
    out = out if isinstance(out, torch.Tensor) else torch.cat(
        [o.flatten() for o in out])
    g = torch.Generator().manual_seed(weight_seed)
    w = torch.randn(out.shape, generator=g, dtype=out.dtype)
    (out * w).sum().backward()
    in_grads = [t.grad.clone() for t in inputs if t.requires_grad]
    grads = {n: p.grad.clone() for n, p in module.named_parameters()}
    buffers = {n: b.clone() for n, b in module.named_buffers()}
    return out.detach(), in_grads, grads, buffers


def _assert_same_step(plain, with_cp, inputs, call=None):
    call = call or (lambda net: net)
    ref = _step(plain, call(plain), [
        t.detach().requires_grad_(t.requires_grad) for t in inputs])
    got = _step(with_cp, call(with_cp), [
        t.detach().requires_grad_(t.requires_grad) for t in inputs])
    torch.testing.assert_close(got[0], ref[0], rtol=1e-12, atol=1e-12)
    for a, b in zip(got[1], ref[1]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert set(got[2]) == set(ref[2])
    for n in ref[2]:
        torch.testing.assert_close(got[2][n], ref[2][n], rtol=1e-10,
                                   atol=1e-12, msg=n)
    assert set(got[3]) == set(ref[3]) and ref[3]
    for n in ref[3]:
        # running statistics updated exactly once, as without with_cp
        # (NaN: the head's uncalibrated flag threshold)
        torch.testing.assert_close(got[3][n], ref[3][n], rtol=1e-12,
                                   atol=1e-12, equal_nan=True, msg=n)


def _pair(cfg):
    torch.manual_seed(0)
    plain = MODELS.build(dict(cfg, with_cp=False)).double()
    cp = MODELS.build(dict(cfg, with_cp=True)).double()
    cp.load_state_dict(plain.state_dict())
    for net in (plain, cp):
        net.train()  # (MMPose's ResNet.train returns None: no chaining)
    return plain, cp


def test_decoder_step_with_cp_equals_without():
    plain, cp = _pair(
        dict(type='UNetDecoder', in_channels=IN_CHANNELS,
             decoder_channels=(8, 6, 4, 4, 4)))
    assert cp.with_cp and all(b.with_cp for b in cp.blocks)
    # the output-resolution block also checkpoints its convs one by one
    assert [b.cp_convs for b in cp.blocks] == [False] * 4 + [True]
    _assert_same_step(plain, cp, _features(),
                      call=lambda net: lambda *f: net(f))
    # and the modules really were checkpointed: only the blocks' inputs
    # (and what the next op keeps) are saved, far less than without
    saved = {}
    for name, net in (('plain', plain), ('cp', cp)):
        total = []
        with torch.autograd.graph.saved_tensors_hooks(
                lambda t: total.append(t.numel()) or t, lambda t: t):
            net(_features())
        saved[name] = sum(total)
    assert saved['cp'] < saved['plain'] / 3, saved


def _fill_buffers(net):
    # non-trivial running statistics, so that an update is visible
    with torch.no_grad():
        for m in net.modules():
            if getattr(m, 'track_running_stats', False):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)


@pytest.mark.parametrize('deep_stem', [False, True])
def test_backbone_step_with_cp_equals_without(deep_stem):
    plain, cp = _pair(dict(type='ResNetWithStem', depth=18,
                           deep_stem=deep_stem))
    _fill_buffers(plain)
    cp.load_state_dict(plain.state_dict())
    # MMPose's own blocks never checkpoint (their reentrant call would
    # update the running statistics twice); the backbone does it
    assert cp.with_cp and not any(
        getattr(m, 'with_cp', False) for m in cp.modules() if m is not cp)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    _assert_same_step(plain, cp, [x])


def test_mmpose_resnet_with_cp_updates_running_stats_twice():
    """Why ResNetWithStem does not pass with_cp on to MMPose's blocks: the
    reentrant checkpoint they call re-runs BN in train mode in backward."""
    torch.manual_seed(0)
    cfg = dict(type='ResNet', depth=18, out_indices=(3, ))
    plain = MODELS.build(dict(cfg, with_cp=False)).double()
    theirs = MODELS.build(dict(cfg, with_cp=True)).double()
    theirs.load_state_dict(plain.state_dict())
    plain.train()
    theirs.train()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64, requires_grad=True)
    with pytest.warns(UserWarning, match='use_reentrant'):
        theirs(x)[0].sum().backward()
    plain(x)[0].sum().backward()
    counts = {n: int(b) for n, b in theirs.named_buffers()
              if n.endswith('num_batches_tracked')}
    assert counts['bn1.num_batches_tracked'] == 1  # the stem: no checkpoint
    assert counts['layer1.0.bn1.num_batches_tracked'] == 2
    assert not torch.allclose(theirs.layer1[0].bn1.running_mean,
                              plain.layer1[0].bn1.running_mean)


def test_checkpoint_train_runs_plainly_in_eval_and_no_grad():
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3))
    x = torch.randn(1, 2, 6, 6, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(
            lambda t: pytest.fail('checkpointed under no_grad'), lambda t: t):
        with torch.no_grad():
            checkpoint_train(net, net, x)
    net.eval()
    out = checkpoint_train(net, net, x)
    assert out.grad_fn is not None
    assert 'Checkpoint' not in type(out.grad_fn).__name__


def test_frozen_running_stats_restores_every_buffer():
    bn = torch.nn.BatchNorm2d(3).train()
    before = {n: b.clone() for n, b in bn.named_buffers()}
    with frozen_running_stats(bn):
        bn(torch.randn(4, 3, 5, 5) + 3)
        assert bn.num_batches_tracked == 1  # updated inside
    for n, b in bn.named_buffers():
        assert torch.equal(b, before[n]), n


def test_paper_network_step_with_cp_equals_without():
    """The whole paper network (backbone + neck + head), tiny input."""
    def build(with_cp):
        backbone = dict(type='ResNetWithStem', depth=18, with_cp=with_cp)
        torch.manual_seed(0)
        return MODELS.build(dict(
            type='TopdownPoseEstimator', backbone=backbone,
            neck=dict(type='UNetDecoder', backbone=backbone,
                      decoder_channels=(16, 8, 8, 4, 4), with_cp=with_cp),
            head=dict(type='SoftmaxHeatmapHead', in_channels=4,
                      out_channels=3, deconv_out_channels=None,
                      final_layer=dict(kernel_size=3, padding=1),
                      decoder=dict(type='SoftmaxHeatmap', input_size=(64, 64),
                                   heatmap_size=(64, 64))))).double().train()

    plain, cp = build(False), build(True)
    _fill_buffers(plain)
    cp.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    _assert_same_step(
        plain, cp, [x],
        call=lambda net: lambda t: net.head(net.neck(net.backbone(t))))
