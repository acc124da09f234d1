"""What the configuration flag and the plausibility-constrained decode do on
the demo model's maps: as predicted, and with confident false peaks.

The demo model (``make demo``: ``work_dirs/demo/calibrated.pth``, its
configuration model fitted on the training split's ground truth and its
threshold on the calibration split) predicts the held-out images (Test1 and
Test2, never calibration). Its probability maps are kept, and every number
below comes from the head's own ``predict`` run on them
(:func:`mmchh.testing.false_peaks.predict_from_log_probs`, with
``plausibility_decode=True``):

* **as predicted** (Test1 + Test2): what each flag catches
  (:func:`mmchh.evaluation.functional.flag_signal_intervals`: recall of
  erroneous landmarks, false-flag rate on correct ones, image-bootstrap
  intervals), and the constrained decode on the landmarks flagged
  implausible: their MRE before and after, and the MRE of the correct
  landmarks with the constrained answer taken wherever there is one;
* **injected** (Test1, ``--rounds`` rounds per false-peak mass): in each
  round one random landmark per image gets a copy of its own map shifted
  ``--distance`` mm away carrying ``--mass`` of the mass
  (:func:`mmchh.testing.false_peaks.inject_false_peak`): the mode moves
  there, and at mass 0.97 the right peak falls below ERE's cut-off (5 % of
  the maximum) so the ERE stays the landmark's own. Reported: the recall of
  the injected landmarks by ``implausible``, by ERE and by either, how many
  ERE alone calls sure (not flagged), their MRE before / after the
  constrained decode, and the other landmarks of those images: false flags
  on the correct ones and their MRE with the constrained answers.

Usage:

    python benchmarks/plausibility.py [--checkpoint work_dirs/demo/calibrated.pth]
        [--rounds 25] [--mass 0.8 0.97] [--distance 30 80]
        [--json docs/results/plausibility.json]
"""
import argparse
import os.path as osp
import sys

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(HERE)
sys.path[:0] = [p for p in (HERE, REPO) if p not in sys.path]

from harness.run_record import run_main, run_record  # noqa: E402
from harness.plausibility_flags import (as_predicted,  # noqa: E402
                                        calibration_basis, injected,
                                        load_maps)

CONFIG = osp.join(REPO, 'configs', 'ceph',
                  'unet_r34_onehot_synthetic_demo.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=CONFIG)
    parser.add_argument('--checkpoint',
                        default=osp.join(REPO, 'work_dirs', 'demo',
                                         'calibrated.pth'))
    parser.add_argument('--data-root',
                        default=osp.join(REPO, 'data', 'synthetic_ceph_coco'))
    parser.add_argument('--rounds', type=int, default=25,
                        help='injection rounds per mass: one random landmark '
                        'per Test1 image each')
    parser.add_argument('--mass', type=float, nargs='+', default=[0.8, 0.97],
                        help="the false peak's share of the mass")
    parser.add_argument('--distance', type=float, nargs=2, default=[30, 80],
                        metavar=('LOW', 'HIGH'),
                        help='how far (mm) the false peak sits')
    parser.add_argument('--erroneous-mm', type=float, default=None,
                        help='radial error above which a landmark is '
                        "erroneous (default: the calibration's)")
    parser.add_argument('--catastrophic-mm', type=float, default=10.0)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', help='write the results here')
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f'--rounds must be >= 1; got {args.rounds}')
    if not all(0 < m < 1 for m in args.mass):
        parser.error(f'--mass must be in (0, 1); got {args.mass}')
    if not 0 <= args.distance[0] < args.distance[1]:
        parser.error(f'--distance needs 0 <= LOW < HIGH; got '
                     f'{args.distance}')
    return args


def run(args, argv):
    import torch

    from mmchh.apis import init_landmark_model
    model = init_landmark_model(args.config, args.checkpoint, device='cpu')
    model.eval()
    head = model.head
    if head.plausibility_threshold is None:
        raise SystemExit(f'{args.checkpoint} holds no plausibility '
                         'threshold: calibrate it with tools/calibrate.py '
                         '(--plausibility-alpha)')
    basis = calibration_basis(head, args.checkpoint)
    erroneous = args.erroneous_mm
    if erroneous is None:
        erroneous = ((basis.get('configuration') or {}).get('erroneous')
                     or {}).get('limit', 2.0)
    with torch.no_grad():
        maps = load_maps(model, args.config, args.data_root)
        result = dict(
            **run_record('plausibility.py', argv),
            checkpoint=osp.relpath(args.checkpoint, REPO),
            erroneous_mm=erroneous, catastrophic_mm=args.catastrophic_mm,
            calibration=basis,
            as_predicted=as_predicted(head, maps, erroneous,
                                      args.catastrophic_mm),
            injection=dict(rounds=args.rounds, distance_mm=args.distance,
                           seed=args.seed, split='test1',
                           by_mass=injected(head, maps, args.mass,
                                            args.rounds, args.distance,
                                            args.seed, erroneous)))
    return result


def main(argv=None):
    run_main(parse_args, run, argv)


if __name__ == '__main__':
    main()
