"""``ChannelsLastHook`` (``tools/train.py --channels-last``): the model's
weights in NHWC strides, its outputs and gradients those of the contiguous
model within float tolerance."""
import copy
import os.path as osp
from types import SimpleNamespace

import pytest
import torch

from mmchh.engine.hooks import ChannelsLastHook

CL = torch.channels_last


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3, padding=1))


def _step(net, x):
    out = net(x)
    (out**2).mean().backward()
    return out, [p.grad for p in net.parameters()]


def test_hook_converts_weights_and_keeps_values():
    plain = _net()
    converted = copy.deepcopy(plain)
    reference = copy.deepcopy(plain).double()
    params = list(converted.parameters())
    ChannelsLastHook().before_run(SimpleNamespace(model=converted))
    # the same Parameter objects (an optimizer holding them stays valid)
    assert all(a is b for a, b in zip(params, converted.parameters()))
    for m in (converted[0], converted[3]):
        assert m.weight.is_contiguous(memory_format=CL)
    x = torch.randn(2, 3, 12, 10)
    out_cl, grads_cl = _step(converted, x)
    out, grads = _step(plain, x)
    out_ref, grads_ref = _step(reference, x.double())
    assert out_cl.is_contiguous(memory_format=CL)
    # the same sums in another order: float32 rounding only
    scale = float(out_ref.detach().abs().max())
    assert torch.allclose(out_cl.double(), out_ref, atol=1e-5 * scale)
    assert torch.allclose(out.double(), out_ref, atol=1e-5 * scale)
    # the first conv's bias gradient is 0 in exact arithmetic (BN follows):
    # tolerances on the gradients' common scale
    tol = 1e-4 * max(float(g.abs().max()) for g in grads_ref)
    for g_cl, g, g_ref in zip(grads_cl, grads, grads_ref):
        assert torch.allclose(g_cl.double(), g_ref, atol=tol)
        assert torch.allclose(g.double(), g_ref, atol=tol)


def test_train_tool_channels_last(ceph_coco_small, tmp_path):
    """``tools/train.py --channels-last``: the training convs give NHWC
    outputs and the run writes its checkpoint."""
    from conftest import train_small_recording
    layouts = []

    def record(module, args, output):
        if isinstance(module, torch.nn.Conv2d) and torch.is_grad_enabled():
            layouts.append(output.is_contiguous(memory_format=CL))

    work = str(tmp_path / 'cl')
    proc = train_small_recording(ceph_coco_small, work, '--channels-last',
                                 record)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert layouts and all(layouts)
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))


@pytest.mark.parametrize('flag', ['--channels-last'])
def test_train_help_names_the_flag(flag):
    from mmchh.testing.tool_loader import tool_help
    assert flag in tool_help('tools/train.py')
