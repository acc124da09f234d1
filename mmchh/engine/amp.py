# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Mixed precision on the CPU and the GPU: which dtype, and whether the CPU
computes it natively.

On a CPU, autocast runs convolutions and matrix products in bfloat16
(float16 on CUDA). Only a CPU with native bf16 instructions (Intel's AMX
``amx_bf16`` or ``avx512_bf16``; oneDNN then runs bf16 convolutions on
the matrix units) gains speed from it; elsewhere oneDNN emulates bf16 and
it is usually slower than float32. :func:`native_bf16_flags` reads the
flags Linux reports in ``/proc/cpuinfo``.

What stays float32 under autocast: the head's logits are promoted to
float32 before the temperature, the 2D softmax, the decode and ERE
(``SoftmaxHeatmapHead``), and ``SoftmaxNLLLoss`` computes in float32 with
autocast disabled; calibration and every metric read those float32
tensors.
"""
import contextlib
from typing import Iterator, Optional, Tuple

import torch
import torch.nn as nn

__all__ = [
    'NATIVE_BF16_FLAGS', 'amp_dtype', 'amp_summary', 'autocast',
    'enable_predict_amp', 'native_bf16_flags', 'tool_amp'
]

#: CPU flags (``/proc/cpuinfo``) under which bf16 runs natively.
NATIVE_BF16_FLAGS = ('amx_bf16', 'avx512_bf16')


def native_bf16_flags(cpuinfo: str = '/proc/cpuinfo') -> Tuple[str, ...]:
    """The :data:`NATIVE_BF16_FLAGS` the CPU reports, in that order.

    Args:
        cpuinfo (str): The file to read (``/proc/cpuinfo``; a test passes
            its own). A missing file (not Linux) reads as no flags.

    Returns:
        tuple[str]: E.g. ``('amx_bf16', 'avx512_bf16')`` on a Xeon with
        AMX, ``()`` on a CPU without native bf16.
    """
    try:
        with open(cpuinfo, encoding='utf-8', errors='replace') as f:
            text = f.read()
    except OSError:
        return ()
    flags = set()
    for line in text.splitlines():
        key, sep, value = line.partition(':')
        if sep and key.strip() in ('flags', 'Features'):
            flags.update(value.split())
    return tuple(f for f in NATIVE_BF16_FLAGS if f in flags)


def amp_dtype(device_type: str) -> torch.dtype:
    """The autocast dtype of a device type: bfloat16 on ``'cpu'`` (the
    float32 range, no loss scaling), float16 elsewhere (CUDA)."""
    return torch.bfloat16 if device_type == 'cpu' else torch.float16


def amp_summary(device_type: str,
                cpuinfo: str = '/proc/cpuinfo') -> str:
    """One line saying what ``--amp`` does on this device, for logs."""
    if device_type != 'cpu':
        return f'fp16 autocast on {device_type} (mixed precision)'
    flags = native_bf16_flags(cpuinfo)
    native = (f'native bf16: {", ".join(flags)}'
              if flags else 'no native bf16 on this CPU (amx_bf16/'
              'avx512_bf16 absent): emulated, expect it slower than fp32')
    return f'bf16 autocast on CPU ({native})'


@contextlib.contextmanager
def autocast(device_type: str,
             enabled: bool = True,
             dtype: Optional[torch.dtype] = None) -> Iterator[None]:
    """``torch.autocast`` with :func:`amp_dtype`'s dtype; a no-op when not
    ``enabled``."""
    if not enabled:
        yield
        return
    with torch.autocast(device_type=device_type,
                        dtype=dtype or amp_dtype(device_type)):
        yield


def enable_predict_amp(model: nn.Module) -> str:
    """Runs every later call of ``model`` (its ``forward``, so
    ``test_step``/``val_step`` and MMPose's inference) under autocast on
    the model's device; training steps get theirs from the optimizer
    wrapper (:class:`~mmchh.engine.CpuAmpOptimWrapper`).

    A forward pre-hook enters ``torch.autocast`` and a forward hook that
    runs also when the forward raises leaves it, so an error never leaves
    autocast on. Calling it again changes nothing. The weights stay
    float32 (a checkpoint saved later is float32).

    Args:
        model (nn.Module): E.g. a ``TopdownPoseEstimator`` (a wrapper's
            ``module`` is hooked when it has one).

    Returns:
        str: :func:`amp_summary` of the model's device, for the log.

    Note:
        Inside, the backbone's and the decoder's (B, C, H, W) activations
        are bf16 on a CPU (fp16 on CUDA); the head promotes its (B, K, H, W)
        logits to float32 before the softmax, the decode, ERE and the
        scores; the logits it returns for calibration (``output_logits``)
        are summarised in float64 by the calibration.
    """
    model = getattr(model, 'module', model)
    param = next(model.parameters(), None)
    device_type = param.device.type if param is not None else 'cpu'
    if getattr(model, 'amp_hooks', None) is None:
        contexts = []

        def enter(module, args):
            ctx = autocast(device_type)
            ctx.__enter__()
            contexts.append(ctx)

        def leave(module, args, output):
            contexts.pop().__exit__(None, None, None)

        model.amp_hooks = (model.register_forward_pre_hook(enter),
                           model.register_forward_hook(leave,
                                                       always_call=True))
    return amp_summary(device_type)


def tool_amp(model: nn.Module, enabled: bool, tool: str) -> None:
    """A tool's ``--amp`` at predict time: :func:`enable_predict_amp` and
    one line saying so (nothing when not ``enabled``)."""
    if enabled:
        print(f'{tool}: --amp: {enable_predict_amp(model)}', flush=True)
