"""Test a checkpoint with MMEngine's Runner (MMPose's tools/test.py
conventions).

The checkpoint is checked before the Runner is built: a missing, empty,
truncated, malicious (not plain weights), non-finite or other-model file
ends in one line naming it (exit status 1).

Examples:
    python tools/test.py configs/ceph/unet_r34_onehot.py work_dirs/x/best.pth
    python tools/test.py CONFIG CKPT --dump results.pkl --out metrics.json
    python tools/test.py CONFIG CKPT --show-dir overlays/
    python tools/test.py CONFIG CKPT --report review/   # review/report.html
    bash tools/dist_test.sh CONFIG CKPT 4
"""
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

TOOL = 'test.py'


def parse_args(argv=None):
    from mmchh.utils import cli
    parser = cli.ArgumentParser(prog=TOOL, description='Test a pose model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and results')
    parser.add_argument(
        '--dump', type=str,
        help='dump the predictions (keypoints, scores, ERE; no heatmaps) to '
        'this pickle file')
    parser.add_argument('--out', type=str,
                        help='write the metrics to this JSON file (its '
                        'folder is created)')
    parser.add_argument(
        '--show-dir',
        help='write an overlay per test image into this folder: landmarks, '
        'probability contours, conformal region outlines (a calibrated '
        'checkpoint with fitted regions) and ERE '
        '(mmchh.visualization.draw_overlay)')
    parser.add_argument(
        '--show', action='store_true',
        help='also display each overlay in a window (needs a display; on a '
        'headless machine use --show-dir)')
    parser.add_argument('--wait-time', type=cli.finite_positive_float,
                        default=1,
                        help='seconds each overlay is shown with --show')
    cli.add_overlay_show_option(parser, '--draw')
    parser.add_argument(
        '--report', metavar='DIR',
        help='write DIR/report.html, the review report of the split (one '
        'process): images that most need review first, each flagged '
        'landmark zoomed with its region, ERE and true error, the '
        'reliability diagram, ERE vs error and the Good/Erroneous table')
    parser.add_argument(
        '--allow-split-overlap', action='store_true',
        help='score the test split even when its images (same pixels, a '
        'recorded near duplicate or patient group) are in the train or '
        'calib split of its conversion (refused by default); prints a '
        'warning and records the overlap in --out')
    cli.add_allow_config_mismatch(parser)
    cli.add_amp_option(parser)
    cli.add_runner_options(parser, launcher_help='job launcher')
    return parser.parse_args(argv)


def _has_display() -> bool:
    if sys.platform.startswith(('win', 'darwin')):
        return True
    return bool(os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY'))


def _overlay_hook(show_dir, show, wait_time, what='all'):
    """A hook drawing :func:`mmchh.visualization.draw_overlay` per test
    sample (registered on the Runner; needs ``output_heatmaps``, which also
    gives the conformal regions' outlines); ``what``: its ``show``."""
    from mmengine.hooks import Hook

    from mmchh.apis import load_xray
    from mmchh.apis.inference import landmark_result
    from mmchh.visualization import draw_overlay

    class OverlayHook(Hook):
        priority = 'LOW'

        def __init__(self):
            self.used = set()

        def _name(self, path):
            stem = osp.splitext(osp.basename(path))[0] if path else 'image'
            name, i = f'{stem}.png', 1
            while name in self.used:  # a.bmp and a.png, or the same file
                i += 1
                name = f'{stem}~{i}.png'
            self.used.add(name)
            return name

        def after_test_iter(self, runner, batch_idx, data_batch=None,
                            outputs=None):
            model = runner.model.module if hasattr(runner.model,
                                                   'module') else runner.model
            for sample in outputs or []:
                meta = sample.metainfo
                grey = load_xray(meta['img_path'])
                # the API's own conversion: invalid landmarks, names and
                # calibration state exactly as tools/infer.py reports them
                result = landmark_result(
                    sample, model, grey.shape, path=meta['img_path'],
                    return_heatmaps=True)
                out = osp.join(show_dir, self._name(meta['img_path']))
                canvas = draw_overlay(grey, result, out, show=what)
                if show:
                    import cv2
                    cv2.imshow('mmchh test.py', canvas)
                    cv2.waitKey(max(1, int(wait_time * 1000)))

    return OverlayHook()


def _main(argv=None):
    start_time = time.time()
    args = parse_args(argv)
    import mmchh  # noqa: F401  (compat fixes and registration)
    from mmengine.dist import is_main_process
    from mmengine.runner import Runner

    from mmchh.datasets.split_leaks import check_split, loader_ann_file
    from mmchh.engine.amp import tool_amp
    from mmchh.utils.errors import InputError
    from mmchh.utils.io import write_json
    from mmchh.models.checkpoint_fit import checked_run_config
    from mmchh.utils.run_config import (config_errors, init_cpu_distributed,
                                        set_uncertainty_out_dir)
    if args.dump and not args.dump.endswith(('.pkl', '.pickle')):
        raise InputError('--dump must end with .pkl or .pickle; got '
                         f'{args.dump}')
    if args.show and not _has_display():
        raise InputError('--show needs a display and this machine has none '
                         '(DISPLAY is not set); use --show-dir DIR to write '
                         'the overlays to files instead')
    for name, path in (('--out', args.out), ('--show-dir', args.show_dir)):
        if path and osp.exists(path) and (osp.isdir(path) == (
                name == '--out')):
            raise InputError(f'{name} {path} is a '
                             f'{"folder" if name == "--out" else "file"}')
    if args.report:
        from mmchh.apis.split_report import (SplitReportHook,
                                             check_split_report_dir)
        if args.launcher != 'none':
            raise InputError('--report runs in one process; drop --launcher')
        check_split_report_dir(args.report)
    show_dir = args.show_dir
    if args.show and not show_dir:
        import tempfile
        show_dir = tempfile.mkdtemp(prefix='mmchh_show_')
    cfg = checked_run_config(args)
    leak = check_split(loader_ann_file(cfg.get('test_dataloader')), 'score',
                       args.allow_split_overlap, TOOL)
    cfg.load_from = args.checkpoint
    # the uncertainty metric's plots and JSON go to the work dir
    set_uncertainty_out_dir(cfg, cfg.work_dir)
    if args.dump:
        evaluator = cfg.test_evaluator
        evaluator = list(evaluator) if isinstance(evaluator,
                                                  (list, tuple)) else [
                                                      evaluator
                                                  ]
        cfg.test_evaluator = evaluator + [
            dict(type='DumpResults', out_file_path=args.dump)
        ]
    if show_dir or args.report:
        # the overlays draw the probability contours and the conformal
        # regions' outlines from the heatmaps
        cfg.model.setdefault('test_cfg', {})['output_heatmaps'] = True
    if show_dir:
        os.makedirs(show_dir, exist_ok=True)
    init_cpu_distributed(cfg)
    # a key or type of the config that cannot be built: one line
    with config_errors(cfg, args.config):
        runner = Runner.from_cfg(cfg)
        tool_amp(runner.model, args.amp, 'test.py')
        if show_dir:
            runner.register_hook(_overlay_hook(show_dir, args.show,
                                               args.wait_time,
                                               args.overlay_show))
        if args.report:
            report = SplitReportHook(args.report, args.overlay_show)
            runner.register_hook(report)
        metrics = runner.test()
    if args.out and is_main_process():
        # atomic, strict JSON, folder created; an overridden leak recorded
        write_json(args.out, {**metrics, **({} if leak is None else
                                            dict(split_check=leak))})
    if is_main_process():
        # what each flag signal catches, one line each (ERE, implausible,
        # combined), or why a signal is not fitted
        from mmchh.evaluation.metrics.flag_signal_report import \
            flag_signal_lines
        for line in flag_signal_lines(metrics):
            print(f'{TOOL}: {line}')
    if show_dir and is_main_process():
        print(f'{TOOL}: overlays in {show_dir}')
    status = _all_invalid_status(metrics, args.out)
    if is_main_process():
        # what it wrote; the review report, when asked for, last: the file
        # to open next
        import glob

        from mmchh.utils.cli import print_written, runner_written
        print_written(TOOL, [('metrics', args.out), ('predictions', args.dump),
                             ('overlays', show_dir)] + [
            item for item in runner_written(runner)
            if item[0] == 'test metrics'
        ] + [('uncertainty report', path) for path in sorted(
            glob.glob(osp.join(cfg.work_dir, '*_uncertainty.json')))],
                      since=start_time)
    if args.report and is_main_process():
        from mmchh.apis.split_report import write_split_report
        print(f'{TOOL}: review report (open this first): '
              f'{write_split_report(runner, report)}')
    return status


def _all_invalid_status(metrics: dict, out) -> int:
    """1, with one line, when a metric saw no valid prediction at all
    (every landmark's map non-finite: broken weights or input); else 0."""
    for key, invalid in metrics.items():
        if not key.endswith('/num_invalid'):
            continue
        total = metrics.get(key[:-len('num_invalid')] + 'num_landmarks')
        if total and invalid >= total:
            print(f'{TOOL}: error: every one of the {int(total)} landmarks '
                  'was predicted invalid (non-finite maps): the weights or '
                  'the input are broken; nothing was measured'
                  f'{f" (metrics written to {out})" if out else ""}',
                  file=sys.stderr)
            return 1
    return 0


def main(argv=None):
    from mmchh.utils.cli import run_tool
    return run_tool(TOOL, _main, argv)


if __name__ == '__main__':
    sys.exit(main())
