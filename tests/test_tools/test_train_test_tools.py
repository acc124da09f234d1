"""tools/train.py and tools/test.py on the real ceph config, shrunk with
--cfg-options only, single-process and on 2 CPU processes (gloo)."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from mmchh.testing import run_tool_in_process


REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'ceph', 'unet_r34_onehot.py')


def small_options(data_root, epochs=1):
    """--cfg-options that shrink the paper's config to a CPU-sized run."""
    from conftest import as_cli_options, small_ceph_options
    return as_cli_options(small_ceph_options(data_root, epochs))


def run(args, **kwargs):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(args, capture_output=True, text=True, env=env,
                          cwd=REPO, **kwargs)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def scalars(work_dir):
    """The per-iteration training losses logged by MMEngine."""
    runs = sorted(d for d in os.listdir(work_dir)
                  if osp.isdir(osp.join(work_dir, d)))
    path = osp.join(work_dir, runs[-1], 'vis_data', 'scalars.json')
    with open(path) as f:
        rows = [json.loads(line) for line in f]
    return [r['loss'] for r in rows if 'loss' in r]


@pytest.fixture(scope='module')
def trained_ceph(ceph_coco_small, tmp_path_factory):
    """tools/train.py on the paper's config, shrunk by --cfg-options."""
    work = str(tmp_path_factory.mktemp('ceph_train'))
    run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', work,
         '--cfg-options', *small_options(ceph_coco_small, epochs=2)])
    ckpt = osp.join(work, 'epoch_2.pth')
    assert osp.isfile(ckpt)
    best = [f for f in os.listdir(work) if f.startswith('best_ceph_MRE')]
    assert len(best) == 1, os.listdir(work)
    return dict(work=work, checkpoint=ckpt, data=ceph_coco_small)


@pytest.fixture(scope='module')
def single_process_test(trained_ceph, tmp_path_factory):
    """tools/test.py on the trained checkpoint, one process, with --out and
    --dump (the reference of the two-process test as well)."""
    tmp = tmp_path_factory.mktemp('ceph_test')
    out, dump = str(tmp / 'metrics.json'), str(tmp / 'preds.pkl')
    proc = run([
        sys.executable, 'tools/test.py', CONFIG, trained_ceph['checkpoint'],
        '--work-dir', str(tmp / 'w'), '--out', out, '--dump', dump,
        '--cfg-options', *small_options(trained_ceph['data'])
    ])
    return dict(out=out, dump=dump, work=str(tmp / 'w'), proc=proc)


def test_train_then_test_with_dump(trained_ceph, single_process_test):
    losses = scalars(trained_ceph['work'])
    assert len(losses) >= 4 and all(l == l for l in losses)
    out, dump = single_process_test['out'], single_process_test['dump']
    proc = single_process_test['proc']
    metrics = json.load(open(out))
    assert {'ceph/MRE', 'ceph/SDR_2mm', 'ceph/SDR_4mm'} <= set(metrics)
    # the uncertainty metrics come with their plots and JSON
    assert {'unc/MERE', 'unc/NLL', 'unc/ECE', 'unc/AUC'} <= set(metrics)
    for name in ('unc_reliability.png', 'unc_ere_vs_error.png',
                 'unc_uncertainty.json'):
        assert osp.isfile(osp.join(single_process_test['work'], name)), name
    assert metrics['ceph/num_landmarks'] == 3 * 19
    import pickle
    with open(dump, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 3
    inst = preds[0]['pred_instances']
    assert inst['keypoints'].shape == (1, 19, 2)
    assert inst['keypoint_ere'].shape == (1, 19)
    assert 'heatmaps' not in str(preds[0].get('pred_fields', ''))
    assert 'MRE' in proc.stdout + proc.stderr


def test_resume_continues_from_last_checkpoint(trained_ceph, tmp_path):
    import shutil
    work = str(tmp_path / 'resume')
    shutil.copytree(trained_ceph['work'], work)
    run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', work,
         '--resume', '--cfg-options',
         *small_options(trained_ceph['data'], epochs=3)])
    assert osp.isfile(osp.join(work, 'epoch_3.pth'))


def test_missing_checkpoint_fails_clearly(tmp_path):
    """(--amp on a CPU trains with bf16 autocast:
    tests/test_engine/test_cpu_amp_optim_wrapper.py.)"""
    bad = run_tool_in_process('test', [CONFIG, str(tmp_path / 'nope.pth')])
    assert bad.returncode != 0 and 'does not exist' in bad.stderr


def test_two_process_training_and_testing_on_cpu(trained_ceph,
                                                single_process_test,
                                                tmp_path):
    """torchrun with 2 gloo processes: trains, and tests the single-process
    checkpoint to the same metrics as one process."""
    env = dict(os.environ, PYTHON=sys.executable, PORT='29561',
               OMP_NUM_THREADS='1')
    work = str(tmp_path / 'dist')
    opts = small_options(trained_ceph['data'], epochs=1)
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', work,
         '--cfg-options', *opts], capture_output=True, text=True, env=env,
        cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))
    run_dir = [d for d in os.listdir(work) if osp.isdir(osp.join(work, d))]
    log = open(osp.join(work, run_dir[0], run_dir[0] + '.log')).read()
    assert "backend='gloo'" in log and 'Distributed training: True' in log
    single, double = single_process_test['out'], str(tmp_path / 'm2.json')
    env['PORT'] = '29562'
    proc = subprocess.run([
        'bash', 'tools/dist_test.sh', CONFIG, trained_ceph['checkpoint'], '2',
        '--work-dir', str(tmp_path / 't2'), '--out', double,
        '--cfg-options', *opts
    ], capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m1, m2 = json.load(open(single)), json.load(open(double))
    assert set(m1) == set(m2)
    for k in m1:
        assert m2[k] == pytest.approx(m1[k], rel=1e-6, abs=1e-9), k
