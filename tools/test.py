"""Test a checkpoint with MMEngine's Runner (MMPose's tools/test.py
conventions).

Examples:
    python tools/test.py configs/ceph/unet_r34_onehot.py work_dirs/x/best.pth
    python tools/test.py CONFIG CKPT --dump results.pkl
    bash tools/dist_test.sh CONFIG CKPT 4
"""
import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Test a pose model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and results')
    parser.add_argument(
        '--dump', type=str,
        help='dump the predictions (keypoints, scores, ERE; no heatmaps) to '
        'this pickle file')
    parser.add_argument('--out', type=str,
                        help='write the metrics to this JSON file')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, key=value')
    parser.add_argument('--launcher',
                        choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import mmchh  # noqa: F401  (compat fixes and registration)
    from mmengine.dist import is_main_process
    from mmengine.runner import Runner

    from mmchh.utils.run_config import (init_cpu_distributed, load_run_config,
                                        set_uncertainty_out_dir)
    if not osp.isfile(args.checkpoint):
        sys.exit(f'test.py: checkpoint {args.checkpoint} does not exist')
    cfg = load_run_config(args.config, args.cfg_options, args.work_dir,
                          args.launcher)
    cfg.load_from = args.checkpoint
    # the uncertainty metric's plots and JSON go to the work dir
    set_uncertainty_out_dir(cfg, cfg.work_dir)
    if args.dump:
        if not args.dump.endswith(('.pkl', '.pickle')):
            sys.exit('test.py: --dump must end with .pkl or .pickle')
        evaluator = cfg.test_evaluator
        evaluator = list(evaluator) if isinstance(evaluator,
                                                  (list, tuple)) else [
                                                      evaluator
                                                  ]
        cfg.test_evaluator = evaluator + [
            dict(type='DumpResults', out_file_path=args.dump)
        ]
    init_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    if args.out and is_main_process():
        with open(args.out, 'w') as f:
            json.dump(metrics, f, indent=1)


if __name__ == '__main__':
    main()
