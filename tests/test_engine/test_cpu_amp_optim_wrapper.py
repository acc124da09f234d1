"""``CpuAmpOptimWrapper`` (``mmchh/engine/optim_wrappers``) and
``tools/train.py --amp`` on a CPU: the forward under bf16 autocast, the
loss and the head's math in float32, parameters, gradients, optimizer
state and checkpoints float32."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmchh.engine import CpuAmpOptimWrapper


class _ConvNet(torch.nn.Module):

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


def _loss(out, target):
    """Float32 squared error, as ``SoftmaxNLLLoss`` computes with autocast
    off."""
    with torch.autocast('cpu', enabled=False):
        return ((out.float() - target)**2).mean()


def test_wrapper_runs_forward_in_bf16_and_steps_float32_params():
    torch.manual_seed(0)
    net = _ConvNet()
    start = {k: v.detach().clone() for k, v in net.state_dict().items()}
    wrapper = CpuAmpOptimWrapper(
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1))
    x, target = torch.randn(2, 2, 5, 5), torch.randn(2, 3, 5, 5)
    with wrapper.optim_context(net):
        out = net(x)
        loss = _loss(out, target)
    assert out.dtype == torch.bfloat16 and loss.dtype == torch.float32
    assert not torch.is_autocast_enabled('cpu')
    wrapper.update_params(loss)
    # the float64 reference: the same loss and gradient written out
    ref = _ConvNet().double()
    ref.load_state_dict({k: v.double() for k, v in start.items()})
    ref_loss = ((ref(x.double()) - target.double())**2).mean()
    ref_loss.backward()
    for name, p in net.named_parameters():
        assert p.dtype == torch.float32
        ref_p = dict(ref.named_parameters())[name]
        step = (p.detach().double() - start[name].double()) / -0.1
        # bf16 keeps 8 significant bits: inputs and weights rounded once
        # each (relative error <= 2^-8 per factor), the products summed in
        # float32; the gradient through them within a few % of its scale
        scale = float(ref_p.grad.abs().max())
        assert torch.allclose(step, ref_p.grad, atol=0.03 * scale), name
    assert abs(float(loss) - float(ref_loss)) < 0.02 * float(ref_loss)


def test_wrapper_dtype_checked_and_registered():
    from mmengine.registry import OPTIM_WRAPPERS
    from mmpose.registry import OPTIM_WRAPPERS as MMPOSE_WRAPPERS
    net = _ConvNet()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(ValueError, match='bfloat16'):
        CpuAmpOptimWrapper(optimizer=opt, dtype='float64')
    assert OPTIM_WRAPPERS.get('CpuAmpOptimWrapper') is CpuAmpOptimWrapper
    built = MMPOSE_WRAPPERS.build(dict(type='CpuAmpOptimWrapper',
                                       optimizer=opt))
    assert built.cast_dtype == torch.bfloat16


def test_enable_amp_picks_the_wrapper_of_the_device():
    from mmchh.utils.errors import InputError
    from mmchh.utils.run_config import enable_amp
    cfg = Config(dict(optim_wrapper=dict(optimizer=dict(type='Adam'))))
    enable_amp(cfg)
    expected = ('AmpOptimWrapper'
                if torch.cuda.is_available() else 'CpuAmpOptimWrapper')
    assert cfg.optim_wrapper.type == expected
    other = Config(dict(optim_wrapper=dict(type='ApexOptimWrapper')))
    with pytest.raises(InputError, match='ApexOptimWrapper'):
        enable_amp(other)


def test_train_tool_amp_on_cpu(ceph_coco_small, tmp_path):
    """A tiny ``tools/train.py --amp`` run: every training conv gives bf16,
    every loss is float32, the log says bf16 autocast is on, and the
    checkpoint's weights and optimizer state are float32."""
    if torch.cuda.is_available():
        pytest.skip('--amp is fp16 on a GPU')
    from conftest import train_small_recording

    from mmchh.models.losses import SoftmaxNLLLoss
    from mmchh.utils.checkpoint import load_checkpoint_file
    seen = []

    def record(module, args, output):
        if isinstance(module, (torch.nn.Conv2d, SoftmaxNLLLoss)):
            seen.append((type(module).__name__, output.dtype,
                         torch.is_grad_enabled()))

    work = str(tmp_path / 'amp')
    proc = train_small_recording(ceph_coco_small, work, '--amp', record)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert 'CpuAmpOptimWrapper: bf16 autocast on CPU' in log
    train_convs = {d for n, d, grad in seen if n == 'Conv2d' and grad}
    val_convs = {d for n, d, grad in seen if n == 'Conv2d' and not grad}
    losses = {d for n, d, _ in seen if n == 'SoftmaxNLLLoss'}
    assert train_convs == {torch.bfloat16}
    assert val_convs == {torch.float32}  # validation is not autocast
    assert losses == {torch.float32}
    ckpt = load_checkpoint_file(osp.join(work, 'epoch_1.pth'))
    floats = [v for v in ckpt['state_dict'].values() if v.is_floating_point()]
    assert floats and {v.dtype for v in floats} == {torch.float32}
    state = ckpt['optimizer']['state']
    moments = [v for s in state.values() for v in s.values()
               if torch.is_tensor(v) and v.is_floating_point() and v.ndim]
    assert moments and {v.dtype for v in moments} == {torch.float32}
