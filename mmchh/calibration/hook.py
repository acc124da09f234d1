# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
import os.path as osp
from typing import Optional, Union

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpose.registry import HOOKS

from mmchh.utils.checkpoint_recipe import add_recipe

from .calibrate import calibrate_model
from .settings import check_calibration_settings


@HOOKS.register_module()
class TemperatureScalingHook(Hook):
    """Calibrates the model after training (temperature scaling + flagging).

    After the last epoch -- which in MMEngine is after the last validation
    and checkpoint -- the hook:

    1. loads the best checkpoint when ``CheckpointHook(save_best=...)`` kept
       one (otherwise keeps the final weights);
    2. fits one temperature per landmark on ``calib_dataloader`` with the
       network in eval mode and every weight frozen, and the ERE flagging
       threshold at ``target_tpr`` (see :mod:`mmchh.calibration.calibrate`),
       and the configuration model of the training split's ground truth
       with its plausibility threshold at ``plausibility_alpha`` (see
       :mod:`mmchh.calibration.configuration`);
    3. saves ``calibrated.pth`` in the work dir with the report
       (``calibration.json``, ``calib_reliability_before_after.png``),
       logging NLL and ECE before and after;
    4. re-runs validation, so the last logged metrics are the calibrated
       ones.

    Args:
        calib_dataloader (str | dict): Dataloader config of the calibration
            split (same pipeline as validation; never the test split), or
            the name of a top-level config entry holding it. Defaults to
            ``'calib_dataloader'``.
        erroneous_mm (float): Radial error defining "erroneous" for the
            flagging threshold. Defaults to 2.0.
        erroneous_px (float): The same in original-image pixels, for a
            calibration split without ``spacing``. Defaults to 10.0.
        target_tpr (float): TPR the threshold reaches on the calibration
            split. Defaults to 0.5.
        use_best (bool): Calibrate the best checkpoint rather than the last
            weights. Defaults to True.
        revalidate (bool): Re-run validation afterwards. Defaults to True.
        prior_std (float, optional): Std of the Gaussian prior on log T
            around the pooled temperature (MAP fit; keeps landmarks whose
            every calibration target is at the mode from T -> 0). None or 0
            for the paper's plain maximum likelihood. Defaults to 1.0.
        do_no_harm (bool): Keep the per-landmark fit only when its
            cross-validated NLL change over the calibration images excludes
            harm, else the pooled temperature, else T = 1 (the choice and
            why are logged and in ``calibration.json``'s
            ``calib.selection``). False: the per-landmark fit, unchecked.
            Defaults to True.
        cv_folds (int): Folds of that cross-validation at most (with up to
            this many calibration images, leave-one-image-out). Defaults
            to 10.
        plausibility_alpha (float): Share of correct calibration landmarks
            the plausibility threshold may flag, in (0, 1). Defaults to
            0.02.

    Raises:
        CalibrationError: for a setting out of its range, when the hook is
            built (before training).
    """

    priority = 'LOW'

    def __init__(self,
                 calib_dataloader: Union[str, dict] = 'calib_dataloader',
                 erroneous_mm: float = 2.0,
                 target_tpr: float = 0.5,
                 use_best: bool = True,
                 revalidate: bool = True,
                 prior_std: Optional[float] = 1.0,
                 erroneous_px: float = 10.0,
                 do_no_harm: bool = True,
                 cv_folds: int = 10,
                 plausibility_alpha: float = 0.02) -> None:
        # a bad setting stops the run when the hook is built, not after
        # the whole training
        check_calibration_settings(erroneous_mm, erroneous_px, target_tpr,
                                   prior_std, cv_folds,
                                   plausibility_alpha=plausibility_alpha)
        self.calib_dataloader = calib_dataloader
        self.erroneous_mm = erroneous_mm
        self.target_tpr = target_tpr
        self.use_best = use_best
        self.revalidate = revalidate
        self.prior_std = prior_std
        self.erroneous_px = erroneous_px
        self.do_no_harm = do_no_harm
        self.cv_folds = cv_folds
        self.plausibility_alpha = plausibility_alpha

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Every checkpoint of the run carries its recipe (the model
        config, grid, test pipeline and landmark names:
        :mod:`mmchh.utils.checkpoint_recipe`), so it predicts without a
        config and refuses one that does not match."""
        add_recipe(checkpoint.setdefault('meta', {}), runner.cfg)

    def after_train(self, runner) -> None:
        if self.use_best:
            best = None
            for hook in runner.hooks:
                best = getattr(hook, 'best_ckpt_path', None) or best
            if best and osp.isfile(best):
                print_log(f'calibration: loading the best checkpoint {best}',
                          logger='current')
                runner.load_checkpoint(best, map_location='cpu')
        loader = self.calib_dataloader
        if isinstance(loader, str):
            loader = runner.cfg.get(loader)
        calibrate_model(
            runner,
            loader,
            erroneous_mm=self.erroneous_mm,
            target_tpr=self.target_tpr,
            prior_std=self.prior_std,
            erroneous_px=self.erroneous_px,
            do_no_harm=self.do_no_harm,
            cv_folds=self.cv_folds,
            # the configuration model is fitted on what the model trained on
            shape_data=runner.train_dataloader.dataset,
            plausibility_alpha=self.plausibility_alpha)
        if self.revalidate and runner.val_loop is not None:
            print_log('calibration: validating the calibrated model',
                      logger='current')
            runner.val_loop.run()
