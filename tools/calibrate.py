"""Temperature-scale an existing checkpoint and set its flagging threshold.

Fits one temperature per landmark on the config's calibration split (never
the test split) with every weight frozen -- by default kept only when
cross-validation over the calibration images says it lowers the NLL of
unseen images, else one pooled temperature, else T = 1 (`--fit`) --, chooses the ERE threshold that
flags `--target-tpr` of the erroneous landmarks there, saves the calibrated
checkpoint with a report (calibration.json, a before/after reliability
diagram), fits the configuration model of the training split's ground
truth with its plausibility threshold (`--plausibility-alpha`), then
validates the calibrated model.

Example:
    python tools/calibrate.py configs/ceph/unet_r34_onehot.py \
        work_dirs/unet_r34_onehot/best_ceph_MRE_epoch_9.pth
"""
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

#: Settings of the fit that default to the config's TemperatureScalingHook
#: (or, where the config sets none, to the hook's own defaults): the
#: keyword of ``calibrate_model`` -> what it sets.
HOOK_SETTINGS = {
    'erroneous_mm': 'radial error that counts as erroneous',
    'erroneous_px': 'the same in original-image pixels, for a calibration '
    'split without spacing',
    'target_tpr': 'TPR of the flagging threshold on the calibration split',
    'prior_std': 'std of the prior on each landmark\'s log T around the '
    'pooled T; 0 = plain maximum likelihood as in the paper',
    'plausibility_alpha': 'share of correct calibration landmarks the '
    'plausibility threshold (configuration model of the training split) '
    'may flag, in (0, 1)',
}


#: The option type (an :mod:`mmchh.utils.cli` type) of each
#: :data:`HOOK_SETTINGS` entry and of ``--cv-folds`` (two folds at least): a
#: bad value is one argparse line before the config, the checkpoint or the
#: split is read.
OPTION_TYPES = dict(erroneous_mm='finite_positive_float',
                    erroneous_px='finite_positive_float',
                    target_tpr='fraction', prior_std='non_negative_float',
                    cv_folds='int_at_least_2',
                    plausibility_alpha='open_fraction')

#: ``--fit`` choice -> the hook's / ``calibrate_model``'s ``do_no_harm``.
FIT_CHOICES = {'safe': True, 'per-landmark': False}


def hook_defaults(names=None):
    """The TemperatureScalingHook's own default of each
    :data:`HOOK_SETTINGS` entry (or of each of ``names``)."""
    import inspect

    from mmchh.calibration import TemperatureScalingHook
    params = inspect.signature(TemperatureScalingHook).parameters
    return {name: params[name].default for name in names or HOOK_SETTINGS}


def parse_args(argv=None):
    from mmchh.utils import cli
    types = {
        name: cli.number_type(int, low=2) if kind == 'int_at_least_2' else
        getattr(cli, kind)
        for name, kind in OPTION_TYPES.items()
    }
    parser = cli.ArgumentParser(prog='calibrate.py',
                                description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint to calibrate')
    parser.add_argument('--work-dir', help='where the calibrated checkpoint '
                        'and the report go')
    parser.add_argument('--out', default='calibrated.pth',
                        help='file name of the calibrated checkpoint')
    for name, default in hook_defaults().items():
        parser.add_argument(
            '--' + name.replace('_', '-'), type=types[name],
            default=None,
            help=f'{HOOK_SETTINGS[name]} (default: the config hook\'s, else '
            f'{default})')
    defaults = hook_defaults(('do_no_harm', 'cv_folds'))
    parser.add_argument(
        '--fit', choices=sorted(FIT_CHOICES), default=None,
        help='safe: keep the per-landmark temperatures only when the '
        'paired bootstrap interval of their cross-validated NLL change over '
        'the calibration images lies below 0, else the pooled temperature '
        '(same test), else T = 1; calibration.json\'s calib.selection says '
        'which and why. per-landmark: the per-landmark fit, unchecked '
        '(the behaviour before the check). Default: the config hook\'s '
        'do_no_harm, else ' +
        ('safe' if defaults['do_no_harm'] else 'per-landmark'))
    parser.add_argument(
        '--cv-folds', type=types['cv_folds'], default=None,
        help='folds of that cross-validation at most; with up to this many '
        'calibration images, leave-one-image-out (default: the config '
        f'hook\'s, else {defaults["cv_folds"]})')
    parser.add_argument('--no-validate', action='store_true')
    parser.add_argument(
        '--allow-split-overlap', action='store_true',
        help='calibrate even on a split its conversion marked test, or one '
        'whose images are in the conversion\'s train split (refused by '
        'default); prints a warning and records the overlap in '
        'calibration.json')
    cli.add_allow_config_mismatch(parser)
    cli.add_amp_option(parser)
    cli.add_runner_options(parser)
    return parser.parse_args(argv)


def _main(argv=None):
    start_time = time.time()
    args = parse_args(argv)
    import mmchh  # noqa: F401
    from mmengine.runner import Runner

    from mmchh.calibration import calibrate_model
    from mmchh.calibration.settings import check_calibration_settings
    from mmchh.engine.amp import tool_amp
    from mmchh.datasets.split_leaks import (check_split, loader_ann_file,
                                           record_override)
    from mmchh.models.checkpoint_fit import checked_run_config
    from mmchh.utils.run_config import (config_errors, init_cpu_distributed,
                                        temperature_hook_config)
    cfg = checked_run_config(args)
    hook = temperature_hook_config(cfg)
    calib = hook.get('calib_dataloader', 'calib_dataloader')
    if isinstance(calib, str):
        calib = cfg.get(calib)
    leak = check_split(loader_ann_file(calib), 'calibrate',
                       args.allow_split_overlap, 'calibrate.py')
    settings = {
        name: hook.get(name, default) if getattr(args, name) is None else
        getattr(args, name)
        for name, default in hook_defaults().items()
    }
    extra = hook_defaults(('do_no_harm', 'cv_folds'))
    settings['do_no_harm'] = hook.get('do_no_harm', extra['do_no_harm']) \
        if args.fit is None else FIT_CHOICES[args.fit]
    settings['cv_folds'] = hook.get('cv_folds', extra['cv_folds']) \
        if args.cv_folds is None else args.cv_folds
    # the config hook's settings too, before anything is built or streamed
    check_calibration_settings(
        **{k: v for k, v in settings.items() if k != 'do_no_harm'})
    # the hook must not calibrate a second time inside runner.val()
    cfg.custom_hooks = [
        h for h in cfg.get('custom_hooks', [])
        if h.get('type') != 'TemperatureScalingHook'
    ]
    # validation here is a report, not model selection: no best checkpoint
    if cfg.get('default_hooks', {}).get('checkpoint'):
        cfg.default_hooks.checkpoint.save_best = None
    cfg.load_from = args.checkpoint
    init_cpu_distributed(cfg)
    # a key or type of the config that cannot be built: one line
    with config_errors(cfg, args.config):
        runner = Runner.from_cfg(cfg)
        runner.load_or_resume()
        tool_amp(runner.model, args.amp, 'calibrate.py')
        # CalibrationError is an InputError: one line, exit status 1
        # the configuration model is fitted on the training split's
        # ground truth (records only; none in the config: not fitted)
        train = (cfg.get('train_dataloader') or {}).get('dataset')
        calibrate_model(runner, calib, checkpoint_name=args.out,
                        shape_data=train, **settings)
        record_override(osp.join(runner.work_dir, 'calibration.json'), leak)
        if not args.no_validate and cfg.get('val_dataloader'):
            runner.val()
    from mmengine.dist import is_main_process

    from mmchh.utils.cli import print_written, runner_written
    if is_main_process():
        print_written('calibrate.py', [
            ('calibrated checkpoint', osp.join(runner.work_dir, args.out)),
            ('calibration report', osp.join(runner.work_dir,
                                            'calibration.json'))
        ] + [item for item in runner_written(runner)
             if item[0] == 'validation log'], since=start_time)
    return 0


def main(argv=None):
    from mmchh.utils.cli import run_tool
    return run_tool('calibrate.py', _main, argv)


if __name__ == '__main__':
    sys.exit(main())
