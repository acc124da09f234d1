"""MMPose habits work with an mmchh config:
``from mmpose.apis import init_model, inference_topdown`` in a fresh
interpreter that never imports mmchh (the config's ``custom_imports`` is
enough: ``mmchh_mmcv_ops.pth`` serves ``mmcv.ops`` at start-up), and
``tools/test.py --show-dir`` writes overlays."""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

FRESH = r'''
import json, sys
from mmpose.apis import inference_topdown, init_model
assert 'mmchh' not in sys.modules, 'mmchh was imported before the config'
model = init_model(sys.argv[1], sys.argv[2], device='cpu')
assert 'mmchh' in sys.modules  # through the config's custom_imports
samples = inference_topdown(model, sys.argv[3])
pred = samples[0].pred_instances
print(json.dumps(dict(
    keypoints=pred.keypoints.tolist(),
    scores=pred.keypoint_scores.tolist(),
    ere=pred.keypoint_ere.tolist(),
    head=type(model.head).__name__,
    mmcv_ops=type(sys.modules['mmcv.ops']).__name__)))
'''


@pytest.fixture(scope='module')
def tiny(trained_tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp('habits')
    cfg_file = str(root / 'tiny_cfg.py')
    trained_tiny['cfg'].dump(cfg_file)
    data_root = trained_tiny['cfg'].train_dataloader.dataset.data_root
    image = osp.join(data_root, 'images', '000.png')
    return dict(cfg=cfg_file, ckpt=trained_tiny['checkpoint'], image=image)


def test_init_model_and_inference_topdown_without_importing_mmchh(tiny):
    proc = subprocess.run(
        [sys.executable, '-c', FRESH, tiny['cfg'], tiny['ckpt'],
         tiny['image']],
        capture_output=True, text=True, cwd=str(osp.dirname(tiny['cfg'])),
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out['head'] == 'SoftmaxHeatmapHead'
    assert len(out['keypoints'][0]) == 3 and len(out['ere'][0]) == 3
    assert all(0 < s <= 1 for s in out['scores'][0])
    # the image's own marks are where the model puts them (trained model)
    h, w = cv2.imread(tiny['image'], cv2.IMREAD_GRAYSCALE).shape
    for x, y in out['keypoints'][0]:
        assert 0 <= x < w and 0 <= y < h
    import mmchh.utils.compat as compat
    if not compat.mmcv_ops_available():
        assert out['mmcv_ops'] == 'MissingOpsModule'


def test_startup_file_is_installed_and_cheap():
    """The .pth is in site-packages and imports no third-party module."""
    import site
    dirs = site.getsitepackages() + [site.getusersitepackages()]
    found = [d for d in dirs if osp.isfile(osp.join(d, 'mmchh_mmcv_ops.pth'))]
    assert found, f'mmchh_mmcv_ops.pth is in none of {dirs}'
    code = ('import sys; import mmchh_mmcv_ops; '
            'print(sorted(m for m in ("torch", "numpy", "mmcv", "mmpose", '
            '"mmchh") if m in sys.modules)); '
            'print(any(type(f).__name__ == "MissingOpsFinder" '
            'for f in sys.meta_path))')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, check=True)
    assert proc.stdout.split('\n')[:2] == ['[]', 'True']


def test_test_tool_show_dir_writes_overlays(tiny, tmp_path):
    spec = importlib.util.spec_from_file_location(
        'test_tool_habits', osp.join(REPO, 'tools', 'test.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    show = tmp_path / 'show'
    assert tool.main([tiny['cfg'], tiny['ckpt'], '--work-dir',
                      str(tmp_path / 'w'), '--show-dir', str(show)]) == 0
    names = sorted(os.listdir(show))
    assert names == [f'{i:03d}.png' for i in range(8)]
    img = cv2.imread(str(show / names[0]))
    assert img is not None and (img[..., 0] != img[..., 2]).any()  # colour
    env = {k: v for k, v in os.environ.items()
           if k not in ('DISPLAY', 'WAYLAND_DISPLAY')}
    if sys.platform.startswith('linux'):
        proc = subprocess.run(
            [sys.executable, osp.join(REPO, 'tools', 'test.py'), tiny['cfg'],
             tiny['ckpt'], '--show'], capture_output=True, text=True,
            env=env, cwd=REPO)
        assert proc.returncode == 1
        assert 'test.py: error: --show needs a display' in proc.stderr
        assert 'Traceback' not in proc.stderr
