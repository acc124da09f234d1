"""The data, train and test stages of ``benchmarks/claims_over_seeds.py``:
the arms it compares, and the project's own tools run per arm and seed
(each stage skips what an earlier run already wrote)."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time

#: The checkout the tools run from.
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

#: arm -> (config, the test variants: name -> extra --cfg-options)
ARMS = {
    'mean': ('configs/ceph/unet_r34_onehot_synthetic_demo.py', {
        'subpixel': ['model.head.decoder.subpixel_radius=1'],
    }),
    'both': ('configs/ceph/unet_r34_multiannotator_synthetic_demo.py', {}),
    'quarter': ('configs/ceph/unet_r34_onehot_quarter_synthetic_demo.py', {
        'mode': ['model.head.decoder.subpixel_radius=0'],
    }),
}
#: arms trained, calibrated and tested with ``--amp`` (bf16 autocast on a
#: CPU, fp16 on CUDA): arm -> the float32 arm it repeats (its config; the
#: test variants without the other decode)
AMP_ARMS = {'mean_amp': 'mean', 'quarter_amp': 'quarter'}
ARMS.update({amp: (ARMS[base][0], {}) for amp, base in AMP_ARMS.items()})
#: test variants of the do-no-harm calibrated checkpoint at the other
#: precision (--amp at predict time only, or --amp in training only): where
#: --amp's cost lies. name -> whether tools/test.py runs with --amp
CROSS_PRECISION = {'amp_predict': True, 'fp32_predict': False}
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader',
           'calib_dataloader')


def run_logged(cmd, log, threads):
    """Runs one tool command, its output to ``log``; raises with the log's
    tail when it fails."""
    env = dict(os.environ)
    if threads:
        env['OMP_NUM_THREADS'] = str(threads)
    print('$ ' + ' '.join(cmd), flush=True)
    start = time.time()
    with open(log, 'w') as f:
        proc = subprocess.run(cmd, cwd=REPO, stdout=f,
                              stderr=subprocess.STDOUT, env=env)
    if proc.returncode:
        with open(log) as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f'{cmd[1]} failed (rc {proc.returncode}); log '
                           f'{log}:\n{tail}')
    print(f'  done in {time.time() - start:.0f} s', flush=True)


def amp_flag(arm):
    """``['--amp']`` for an arm of :data:`AMP_ARMS`, else ``[]``."""
    return ['--amp'] if arm in AMP_ARMS else []


def data_options(coco):
    """--cfg-options pointing every split at the claims' set."""
    return [f'{loader}.dataset.data_root={coco}/' for loader in LOADERS]


def make_data(args):
    """The demo's synthetic set with ``--num-test1`` test images."""
    from mmchh.demo import make_demo_data
    coco = osp.join(args.work_dir, 'data', 'synthetic_ceph_coco')
    if osp.isfile(osp.join(coco, 'test1.json')):
        return coco
    made = make_demo_data(
        osp.join(args.work_dir, 'data'), (128, 160),
        num_train=12 if args.quick else 24,
        num_test1=args.num_test1, num_test2=1)
    return made['coco']


def run_dir(args, arm, seed):
    return osp.join(args.work_dir, f'{arm}_seed{seed}')


def train(args, coco, arm, seed):
    """tools/train.py of one arm and seed (skipped when its calibrated
    checkpoint exists: the config's TemperatureScalingHook ends training)."""
    work = run_dir(args, arm, seed)
    if osp.isfile(osp.join(work, 'calibrated.pth')):
        return
    os.makedirs(work, exist_ok=True)
    options = [f'randomness.seed={seed}'] + data_options(coco)
    if args.quick:
        options += ['train_cfg.max_epochs=2', 'train_cfg.val_interval=1']
    run_logged([sys.executable, 'tools/train.py', ARMS[arm][0],
                '--work-dir', work] + amp_flag(arm) + ['--cfg-options'] +
               options,
               osp.join(work, 'train.out'), args.threads)


def best_checkpoint(work):
    """The run's best checkpoint (MMEngine keeps one), else its last."""
    found = sorted(glob.glob(osp.join(work, 'best_*.pth')))
    if found:
        return found[-1]
    found = sorted(glob.glob(osp.join(work, 'epoch_*.pth')),
                   key=lambda p: int(p.rsplit('_', 1)[1][:-4]))
    if not found:
        raise FileNotFoundError(f'no checkpoint in {work}')
    return found[-1]


#: tools/calibrate.py --fit of each calibrated checkpoint: the default
#: (do-no-harm) and the unchecked per-landmark fit
FITS = ('safe', 'per-landmark')


def calibrate(args, coco, arm, seed):
    """tools/calibrate.py of the run's best checkpoint with each fit of
    :data:`FITS`, into ``calib_<fit>/`` (skipped when written). The
    training run's own hook calibrated too; recalibrating with the tool
    makes every run's calibration the current code's."""
    work = run_dir(args, arm, seed)
    kinds = {kind for _, kind, _ in variants(arm, args.variants)}
    for fit in FITS:
        if f'calib_{fit}/calibrated.pth' not in kinds:
            continue  # no selected variant tests this fit
        out = osp.join(work, f'calib_{fit}')
        if osp.isfile(osp.join(out, 'calibrated.pth')):
            continue
        os.makedirs(out, exist_ok=True)
        run_logged([sys.executable, 'tools/calibrate.py', ARMS[arm][0],
                    best_checkpoint(work), '--work-dir', out, '--fit', fit,
                    '--no-validate'] + amp_flag(arm) + ['--cfg-options'] +
                   data_options(coco),
                   osp.join(out, 'calibrate.out'), args.threads)


def variants(arm, only=None):
    """(variant, checkpoint, extra options) of one arm's tests; the
    checkpoint relative to the run's folder (``best`` for the best one);
    with ``only`` (names, ``--variants``) just those."""
    out = [('uncalibrated', 'best', []),
           ('calibrated', 'calib_safe/calibrated.pth', []),
           ('calibrated_per_landmark', 'calib_per-landmark/calibrated.pth',
            [])]
    for name, options in ARMS[arm][1].items():
        out.append((name, 'calib_safe/calibrated.pth', options))
    cross = ('fp32_predict' if arm in AMP_ARMS else
             'amp_predict' if arm in AMP_ARMS.values() else None)
    if cross:
        out.append((cross, 'calib_safe/calibrated.pth', []))
    return [v for v in out if not only or v[0] in only]


def test(args, coco, arm, seed):
    """tools/test.py of every variant; returns {variant: metrics}."""
    work = run_dir(args, arm, seed)
    results = {}
    for name, kind, options in variants(arm, args.variants):
        out_dir = osp.join(work, 'test', name)
        out = osp.join(out_dir, 'metrics.json')
        if not osp.isfile(out):
            if coco is None:
                raise FileNotFoundError(
                    f'{out} is missing; run the test stage first')
            ckpt = best_checkpoint(work) if kind == 'best' else osp.join(
                work, kind)
            os.makedirs(out_dir, exist_ok=True)
            amp = CROSS_PRECISION.get(name, arm in AMP_ARMS)
            run_logged([sys.executable, 'tools/test.py', ARMS[arm][0],
                        ckpt, '--work-dir', out_dir, '--out', out] +
                       (['--amp'] if amp else []) + ['--cfg-options'] +
                       data_options(coco) + options,
                       osp.join(out_dir, 'test.out'), args.threads)
        with open(out) as f:
            results[name] = json.load(f)
    return results
