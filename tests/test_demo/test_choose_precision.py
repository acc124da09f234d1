"""The demo trains in bf16 mixed precision only where the CPU runs bf16
natively (or when asked), and says which and why."""
import pytest
import torch
from mmengine.config import Config

from mmchh.demo import choose_precision

CPU_WITH_AMX = 'flags\t\t: fpu sse avx512f avx512_vnni amx_bf16 amx_tile\n'
CPU_WITHOUT = 'flags\t\t: fpu sse avx512f avx512_vnni\n'


def _cfg():
    return Config(dict(optim_wrapper=dict(
        type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-3))))


@pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU rule')
@pytest.mark.parametrize('amp, cpu, used, words', [
    ('auto', CPU_WITH_AMX, True, 'native bf16: amx_bf16'),
    ('auto', CPU_WITHOUT, False, 'no native bf16'),
    ('on', CPU_WITHOUT, True, 'emulated'),
    ('off', CPU_WITH_AMX, False, 'float32 (asked for)'),
], ids=['auto_amx', 'auto_without', 'on_without', 'off_amx'])
def test_precision_follows_the_cpu(tmp_path, capsys, amp, cpu, used, words):
    cpuinfo = tmp_path / 'cpuinfo'
    cpuinfo.write_text(cpu)
    cfg = _cfg()
    assert choose_precision(cfg, amp, str(cpuinfo)) is used
    assert cfg.optim_wrapper.type == ('CpuAmpOptimWrapper' if used else
                                      'OptimWrapper')
    out = capsys.readouterr().out
    assert words in out
    assert ('mixed precision' in out) is used


def test_bad_choice_is_refused():
    with pytest.raises(ValueError, match='auto'):
        choose_precision(_cfg(), 'maybe')
