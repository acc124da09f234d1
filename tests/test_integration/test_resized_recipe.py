"""A user's own landmarks at another size, and a reviewed batch scored:
tools/landmark_config.py --input-size 128 160 --heatmap-size 64 80
--epochs 1 writes a config that tools/train.py trains at that size with
no size override (the checkpoint's codec, pipelines and decoder say so);
then one reviewed image, converted test-only (--test-fraction 1, names
from the training folder's metainfo.py), is scored by tools/test.py with
the trained config and --cfg-options data_root=THAT_FOLDER."""
import json
import os.path as osp

import pytest
import torch
from test_datasets.test_converters.landmark_files import (KEYPOINTS,
                                                          write_landmark_set)

from mmchh.testing import run_tool_in_process

INPUT, HEATMAP = (128, 160), (64, 80)


def loader_options(data_root=None):
    """Workers off for the tests' 2 cores; the network offline."""
    opts = ['model.backbone.init_cfg=None', 'randomness.seed=0']
    for loader in ('train', 'val', 'test', 'calib'):
        opts += [f'{loader}_dataloader.num_workers=0',
                 f'{loader}_dataloader.persistent_workers=False']
    if data_root:
        opts.append(f'data_root={data_root}')
    return opts


@pytest.fixture(scope='module')
def resized_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('resized')
    root, out = str(tmp / 'set'), str(tmp / 'own_coco')
    write_landmark_set(root, count=8)
    done = run_tool_in_process('convert_landmarks', [
        out, '--images', osp.join(root, 'images'), '--keypoints', *KEYPOINTS,
        '--labelme', f'dr_a={osp.join(root, "dr_a")}', '--num-val', '1',
        '--num-calib', '1', '--spacing', '0.1'
    ])
    assert done.returncode == 0, done.stderr
    config = str(tmp / 'own_128x160.py')
    done = run_tool_in_process('landmark_config', [
        out, config, '--input-size', *map(str, INPUT), '--heatmap-size',
        *map(str, HEATMAP), '--epochs', '1'
    ])
    assert done.returncode == 0, done.stderr
    work = str(tmp / 'work')
    done = run_tool_in_process('train', [
        config, '--work-dir', work, '--cfg-options',
        'train_dataloader.batch_size=4', 'visualizer.name=vis_resized',
        *loader_options()
    ])
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(tmp=tmp, root=root, out=out, config=config, work=work)


def test_trains_at_the_written_size(resized_run):
    ckpt = torch.load(osp.join(resized_run['work'], 'epoch_1.pth'),
                      map_location='cpu', weights_only=False)
    from mmengine.config import Config
    cfg = Config.fromstring(ckpt['meta']['cfg'], '.py')
    assert cfg.train_cfg.max_epochs == 1
    codec = cfg.model.head.decoder
    assert tuple(codec.input_size) == INPUT
    assert tuple(codec.heatmap_size) == HEATMAP
    for loader in ('train', 'val', 'test', 'calib'):
        for step in cfg[f'{loader}_dataloader'].dataset.pipeline:
            if step.type == 'TopdownAffine':
                assert tuple(step.input_size) == INPUT, loader
            if 'encoder' in step:
                assert step.encoder == codec, loader
    # heatmaps at 1/2: four decoder blocks, the head reads their 32 channels
    assert tuple(cfg.model.neck.decoder_channels) == (256, 128, 64, 32)
    weight = ckpt['state_dict']['head.final_layer.weight']
    assert tuple(weight.shape[:2]) == (len(KEYPOINTS), 32)
    # the model the Runner trained gives heatmaps of that size
    from mmpose.apis import init_model
    model = init_model(cfg, osp.join(resized_run['work'], 'epoch_1.pth'),
                       device='cpu')
    with torch.no_grad():
        maps = model._forward(torch.zeros(1, 3, INPUT[1], INPUT[0]))
    assert tuple(maps.shape) == (1, len(KEYPOINTS), HEATMAP[1], HEATMAP[0])


def test_one_reviewed_image_converts_test_only_and_is_scored(resized_run):
    tmp, root = resized_run['tmp'], resized_run['root']
    reviewed = str(tmp / 'reviewed_coco')
    batch = str(tmp / 'batch')
    import os
    import shutil
    os.makedirs(osp.join(batch, 'images'))
    os.makedirs(osp.join(batch, 'reviewed'))
    shutil.copy(osp.join(root, 'images', '003.png'),
                osp.join(batch, 'images'))
    shutil.copy(osp.join(root, 'dr_a', '003.json'),
                osp.join(batch, 'reviewed'))
    done = run_tool_in_process('convert_landmarks', [
        reviewed, '--images', osp.join(batch, 'images'), '--keypoints-file',
        osp.join(resized_run['out'], 'metainfo.py'), '--labelme',
        f'reviewed={osp.join(batch, "reviewed")}', '--spacing', '0.1',
        '--test-fraction', '1'
    ])
    assert done.returncode == 0, done.stderr
    assert osp.isfile(osp.join(reviewed, 'test.json'))
    assert not osp.exists(osp.join(reviewed, 'train.json'))
    trained = osp.join(resized_run['work'],
                       osp.basename(resized_run['config']))
    metrics_json = str(tmp / 'scored' / 'metrics.json')
    done = run_tool_in_process('test', [
        trained,
        osp.join(resized_run['work'], 'calibrated.pth'), '--work-dir',
        str(tmp / 'scored'), '--out', metrics_json, '--cfg-options',
        'visualizer.name=vis_resized_test', *loader_options(reviewed)
    ])
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'leak' not in done.stderr.lower()
    with open(metrics_json) as f:
        metrics = json.load(f)
    assert metrics['ceph/num_landmarks'] == len(KEYPOINTS)
    for name in KEYPOINTS:
        assert f'ceph/MRE/{name}' in metrics
