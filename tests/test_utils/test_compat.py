import json
import os
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

import mmchh  # noqa: F401
from mmchh.utils import (MissingMMCVOpsError, checkpoint_safe_globals,
                         mmcv_ops_available)


class RunsCommand:
    """A pickled object whose unpickling would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


class GetsNumpyMethod:
    """Abuses getattr to reach a method of an allowed class."""

    def __reduce__(self):
        return (getattr, (np.ndarray, 'tofile'))


class AllocatesBytes:

    def __reduce__(self):
        return (bytes, (10**11, ))


def test_real_training_checkpoint_loads_with_weights_only(trained_tiny):
    ckpt = torch.load(trained_tiny['checkpoint'], map_location='cpu',
                      weights_only=True)
    assert {'meta', 'state_dict', 'message_hub', 'optimizer',
            'param_schedulers'} <= set(ckpt)
    # the numpy metainfo and the HistoryBuffers came back intact
    assert isinstance(ckpt['meta']['dataset_meta']['sigmas'], np.ndarray)
    buf = ckpt['message_hub']['log_scalars']['train/loss']
    assert np.isfinite(buf.mean())
    assert 'head.log_temperature' in ckpt['state_dict']


def test_checkpoint_needs_exactly_the_allow_list(trained_tiny):
    """Without ``import mmchh`` torch refuses the checkpoint; every global it
    lacks is one that mmchh allow-lists by name."""
    code = ('import json, sys, torch, pickle\n'
            f'path = {trained_tiny["checkpoint"]!r}\n'
            'print(json.dumps(\n'
            '    torch.serialization.get_unsafe_globals_in_checkpoint(path)))\n'
            'try:\n'
            '    torch.load(path)\n'
            'except pickle.UnpicklingError:\n'
            '    sys.exit(3)\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True)
    assert proc.returncode == 3, proc.stderr
    needed = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    allowed = {
        g[1] if isinstance(g, tuple) else f'{g.__module__}.{g.__qualname__}'
        for g in checkpoint_safe_globals()
    }
    assert needed and needed <= allowed, needed - allowed


@pytest.mark.parametrize('payload', ['command', 'getattr', 'bytes'])
def test_malicious_checkpoint_is_refused(tmp_path, payload):
    marker = tmp_path / 'pwned'
    evil = dict(
        command=RunsCommand(marker),
        getattr=GetsNumpyMethod(),
        bytes=AllocatesBytes())[payload]
    path = str(tmp_path / 'evil.pth')
    torch.save(dict(state_dict=dict(w=torch.zeros(1)), meta=dict(x=evil)),
               path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    from mmengine.runner import CheckpointLoader
    with pytest.raises(pickle.UnpicklingError):
        CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert not marker.exists()


def test_weights_only_is_never_disabled():
    assert 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD' not in os.environ
    src = osp.join(osp.dirname(mmchh.__file__))
    for dirpath, _, files in os.walk(src):
        for name in files:
            if name.endswith('.py'):
                text = open(osp.join(dirpath, name)).read()
                assert 'weights_only=False' not in text, name


@pytest.mark.skipif(mmcv_ops_available(), reason='full mmcv is installed')
def test_mmcv_ops_placeholder_raises_clear_error():
    import mmpose.models  # noqa: F401  (fails without the placeholder)
    from mmcv.ops import DeformConv2d, MultiScaleDeformableAttention
    with pytest.raises(MissingMMCVOpsError, match='compiled mmcv ops'):
        MultiScaleDeformableAttention(embed_dims=8)
    with pytest.raises(MissingMMCVOpsError, match='MMCV_WITH_OPS=1'):
        DeformConv2d(1, 1, 3)
    # functions, submodules and isinstance checks behave
    from mmcv.ops import nms
    with pytest.raises(MissingMMCVOpsError, match='mmcv.ops.nms'):
        nms(None, None, 0.5)
    from mmcv.ops.multi_scale_deform_attn import \
        multi_scale_deformable_attn_pytorch as f
    with pytest.raises(MissingMMCVOpsError):
        f()
    assert not isinstance(torch.nn.Conv2d(1, 1, 1), DeformConv2d)


def test_import_in_fresh_interpreter_registers_everything():
    code = ('import mmchh; from mmpose.registry import KEYPOINT_CODECS, '
            'MODELS; [KEYPOINT_CODECS.get("SoftmaxHeatmap"), '
            'MODELS.get("SoftmaxHeatmapHead"), MODELS.get("SoftmaxNLLLoss")]'
            '; import mmpose.models')
    subprocess.run([sys.executable, '-c', code], check=True)
