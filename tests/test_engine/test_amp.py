"""Mixed precision at predict time and the CPU's native-bf16 check
(``mmchh/engine/amp.py``): the network under bf16 autocast, the head's
softmax, decode, ERE and scores in float32, predictions close to float32."""
import glob
import os.path as osp

import numpy as np
import pytest
import torch

from mmchh.engine.amp import (amp_dtype, amp_summary, autocast,
                              enable_predict_amp, native_bf16_flags,
                              tool_amp)

XEON_AMX = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme avx512f avx512_bf16 amx_bf16 amx_tile amx_int8
bogomips\t: 4000.00

processor\t: 1
flags\t\t: fpu vme avx512f avx512_bf16 amx_bf16 amx_tile amx_int8
"""
ICE_LAKE = """processor\t: 0
model name\t: Intel(R) Xeon(R) Processor @ 2.60GHz
flags\t\t: fpu avx512f avx512_vnni avx512_bitalg
"""
# a flag named in another field is not a CPU flag
ONLY_IN_NAME = """model name\t: amx_bf16 avx512_bf16 lookalike
flags\t\t: fpu sse2
"""


@pytest.mark.parametrize('text, expected', [
    (XEON_AMX, ('amx_bf16', 'avx512_bf16')),
    (ICE_LAKE, ()),
    (ONLY_IN_NAME, ()),
    ('flags\t: avx512_bf16\n', ('avx512_bf16', )),
], ids=['xeon_amx', 'ice_lake', 'flag_only_in_model_name', 'avx512_bf16'])
def test_native_bf16_flags_from_cpuinfo(tmp_path, text, expected):
    path = tmp_path / 'cpuinfo'
    path.write_text(text)
    assert native_bf16_flags(str(path)) == expected


def test_native_bf16_flags_missing_file_and_summary(tmp_path):
    missing = str(tmp_path / 'none')
    assert native_bf16_flags(missing) == ()
    assert 'no native bf16' in amp_summary('cpu', missing)
    amx = tmp_path / 'amx'
    amx.write_text(XEON_AMX)
    line = amp_summary('cpu', str(amx))
    assert line.startswith('bf16 autocast on CPU') and 'amx_bf16' in line
    assert amp_summary('cuda').startswith('fp16 autocast on cuda')


def test_native_bf16_flags_agree_with_this_machine():
    """The machine's own flags, read the slow obvious way."""
    if not osp.isfile('/proc/cpuinfo'):
        pytest.skip('no /proc/cpuinfo')
    words = open('/proc/cpuinfo').read().split()
    expected = tuple(f for f in ('amx_bf16', 'avx512_bf16') if f in words)
    assert native_bf16_flags() == expected


def test_amp_dtype_and_autocast_context():
    assert amp_dtype('cpu') == torch.bfloat16
    assert amp_dtype('cuda') == torch.float16
    conv = torch.nn.Conv2d(2, 3, 3)
    x = torch.randn(1, 2, 8, 8)
    with autocast('cpu'):
        assert conv(x).dtype == torch.bfloat16
    with autocast('cpu', enabled=False):
        assert conv(x).dtype == torch.float32
    assert not torch.is_autocast_enabled('cpu')


class _Net(torch.nn.Module):
    """A conv and a float32 tail, as the head's promotion is."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x):
        if not torch.isfinite(x).all():
            raise ValueError('non-finite input')
        logits = self.conv(x)
        return logits, torch.softmax(logits.float().flatten(1), -1)


def test_enable_predict_amp_hooks_forward_and_leave_on_error(capsys):
    net = _Net()
    x = torch.randn(2, 1, 6, 6)
    ref_logits, ref_probs = net(x)
    line = enable_predict_amp(net)
    assert enable_predict_amp(net) == line  # a second call adds nothing
    assert len(net._forward_pre_hooks) == 1 and len(net._forward_hooks) == 1
    logits, probs = net(x)
    assert logits.dtype == torch.bfloat16 and probs.dtype == torch.float32
    assert net.conv.weight.dtype == torch.float32
    # bf16 keeps 8 significant bits: |error| <= a few units of 2^-8 of the
    # inputs' scale (9 products summed in float32, one rounding of inputs
    # and weights each, one of the output)
    scale = float(ref_logits.detach().abs().max())
    assert torch.allclose(logits.float(), ref_logits, atol=4 * 2**-8 * scale)
    with pytest.raises(ValueError):
        net(torch.full_like(x, float('nan')))
    assert not torch.is_autocast_enabled('cpu')
    tool_amp(net, True, 'test.py')
    tool_amp(net, False, 'test.py')
    assert capsys.readouterr().out.count('test.py: --amp: bf16 autocast') == 1


def test_predict_with_amp_is_close_to_float32(calibrated_small_demo):
    """The API's ``amp=True`` on the small demo model: every conv runs in
    bf16, the head's probabilities and ERE are float32, and the predictions
    agree with float32 within bf16's precision."""
    from mmchh.apis import init_landmark_model, predict_landmarks
    run = calibrated_small_demo
    images = sorted(glob.glob(osp.join(run['data'], 'images', '*.*')))[:2]
    fp32 = init_landmark_model(run['cfg'], run['ckpt'])
    amp = init_landmark_model(run['cfg'], run['ckpt'], amp=True)
    seen = []
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda m, i, o: seen.append(o.dtype)
        if isinstance(m, torch.nn.Conv2d) else None)
    try:
        a = predict_landmarks(amp, images, spacing=0.1, return_heatmaps=True)
        convs = len(seen)
        f = predict_landmarks(fp32, images, spacing=0.1,
                              return_heatmaps=True)
    finally:
        handle.remove()
    assert convs > 10 and set(seen[:convs]) == {torch.bfloat16}
    assert set(seen[convs:]) == {torch.float32}
    # Tolerances: bf16 keeps 8 significant bits (relative rounding
    # 2^-9); through the U-Net's ~40 conv + BN layers the logits move by a
    # few hundredths of a nat (the demo model: total variation between the
    # maps <= 0.021, the mode within one pixel, ERE within 13 %). A map's
    # probabilities scale by exp(logit change), so the total variation
    # stays below 0.05, the amp mode keeps >= exp(-2 * 0.1) ~ 0.8 of the
    # float32 peak, and the ERE (a spread over the whole map) changes by
    # well under 10 % for the median landmark.
    for ra, rf in zip(a, f):
        assert ra.heatmaps.dtype == np.float32
        k = len(ra.landmarks)
        maps_a = ra.heatmaps.reshape(k, -1).astype(np.float64)
        maps_f = rf.heatmaps.reshape(k, -1).astype(np.float64)
        assert np.allclose(maps_a.sum(-1), 1, atol=1e-5)
        tv = 0.5 * np.abs(maps_a - maps_f).sum(-1)
        assert tv.max() < 0.05, tv
        picked = maps_f[np.arange(k), maps_a.argmax(-1)] / maps_f.max(-1)
        assert picked.min() > 0.8, picked
        ere_a = np.array([lm['ere_px'] for lm in ra.landmarks])
        ere_f = np.array([lm['ere_px'] for lm in rf.landmarks])
        assert np.median(np.abs(ere_a / ere_f - 1)) < 0.1
    for p in amp.parameters():
        assert p.dtype == torch.float32
