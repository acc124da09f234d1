import pytest
import torch
from mmpose.registry import MODELS

import mmchh  # noqa: F401


def test_pretrained_from_a_local_file_and_offline_hint(tmp_path):
    # a real torchvision-layout checkpoint, written here
    src = MODELS.build(dict(type='ResNetWithStem', depth=18))
    path = str(tmp_path / 'resnet18.pth')
    torch.save(src.state_dict(), path)
    net = MODELS.build(
        dict(type='ResNetWithStem', depth=18,
             init_cfg=dict(type='Pretrained', checkpoint=path)))
    net.init_weights()
    for k, v in src.state_dict().items():
        assert torch.equal(net.state_dict()[k], v), k
    # a checkpoint that cannot be fetched: the error says what to do
    missing = MODELS.build(
        dict(type='ResNetWithStem', depth=18,
             init_cfg=dict(type='Pretrained',
                           checkpoint=str(tmp_path / 'nope.pth'))))
    with pytest.raises(RuntimeError, match='init_cfg=None'):
        missing.init_weights()
