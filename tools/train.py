"""Train a model with MMEngine's Runner (MMPose's tools/train.py conventions).

The checkpoint a run starts from (``load_from``, ``--resume FILE`` or the
work dir's latest for ``--resume``) is checked first: a broken or
other-model file ends in one line naming it (exit status 1), as does a
training pipeline whose codec differs from the head's decoder (at the first
step).

Examples:
    python tools/train.py configs/ceph/unet_r34_onehot.py
    python tools/train.py CONFIG --work-dir work_dirs/run1 --amp
    python tools/train.py CONFIG --resume            # latest checkpoint
    bash tools/dist_train.sh CONFIG 4                # 4 processes
"""
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    from mmchh.utils import cli
    parser = cli.ArgumentParser(prog='train.py',
                                description='Train a pose model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the latest checkpoint in the work dir, or from the '
        'given checkpoint')
    cli.add_amp_option(parser)
    parser.add_argument('--channels-last', action='store_true',
                        help='train in the channels_last memory format '
                        '(faster CPU convolutions; same values)')
    parser.add_argument('--no-validate', action='store_true',
                        help='skip validation during training')
    cli.add_runner_options(
        parser, launcher_help='job launcher',
        cfg_options_help='override settings in the config, key=value (e.g. '
        'train_cfg.max_epochs=2)')
    return parser.parse_args(argv)


def _main(argv=None):
    start_time = time.time()
    args = parse_args(argv)
    import mmchh  # noqa: F401  (compat fixes and registration)
    from mmengine.runner import Runner

    from mmchh.models.checkpoint_fit import precheck_checkpoint
    from mmchh.utils.run_config import (config_errors, enable_amp,
                                        init_cpu_distributed,
                                        load_run_config, resume_checkpoint)
    cfg = load_run_config(args.config, args.cfg_options, args.work_dir,
                          args.launcher)
    if args.amp:
        enable_amp(cfg)
    if args.channels_last:
        cfg.custom_hooks = list(cfg.get('custom_hooks', []) or []) + [
            dict(type='ChannelsLastHook')]
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    # the checkpoint to start from (load_from, --resume FILE, or the work
    # dir's latest for --resume) is checked before the Runner loads it
    start = resume_checkpoint(cfg) if cfg.get('resume') else cfg.get(
        'load_from')
    if start:
        precheck_checkpoint(cfg, start, args.config)
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
        cfg.default_hooks.checkpoint.pop('save_best', None)
    init_cpu_distributed(cfg)
    # a key or type of the config that cannot be built: one line
    with config_errors(cfg, args.config):
        runner = Runner.from_cfg(cfg)
        runner.train()
    from mmengine.dist import is_main_process

    from mmchh.utils.cli import print_written, runner_written
    if is_main_process():
        print_written('train.py', runner_written(runner), since=start_time)
    return 0


def main(argv=None):
    from mmchh.utils.cli import run_tool
    return run_tool('train.py', _main, argv)


if __name__ == '__main__':
    sys.exit(main())
