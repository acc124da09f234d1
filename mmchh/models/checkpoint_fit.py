# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Does a checkpoint fit the model a config builds: checked before a Runner
or the inference API loads it (the model is built here, from the config,
without pretrained weights; ``mmchh.utils`` never builds one)."""
import copy
import os.path as osp
from typing import Dict, Optional

from mmengine.config import Config

from mmchh.utils.checkpoint import checkpoint_state_dict, load_checkpoint_file
from mmchh.utils.checkpoint_recipe import (check_config_matches_checkpoint,
                                           checkpoint_recipe)
from mmchh.utils.errors import InputError
from mmchh.utils.run_config import config_errors, load_run_config
from .heads.calibration_buffers import (CALIBRATION_STATE_NAMES,
                                        check_finite_weights)

__all__ = [
    'check_state_fits', 'check_state_fits_model', 'checked_run_config',
    'precheck_checkpoint'
]


def check_state_fits_model(cfg: Config,
                           state: Dict,
                           checkpoint: str,
                           config_name: Optional[str] = None) -> None:
    """Raises unless a state dict fits the model that ``cfg`` builds.

    MMEngine's Runner loads ``load_from`` non-strictly: a checkpoint of
    another model (another landmark count, another backbone) would only log
    a warning and leave random weights behind -- a model that answers
    confidently and wrongly. Builds ``cfg.model`` (without pretrained
    weights; cheap next to a test or training run) and compares names and
    shapes with :func:`check_state_fits`.

    Args:
        cfg (Config): The run's config.
        state (dict): The checkpoint's state dict (``module.``-free).
        checkpoint (str): The checkpoint file, for the message.
        config_name (str, optional): The config file, for the message.

    Raises:
        InputError: see :func:`check_state_fits`.
    """
    from mmengine.registry import DefaultScope
    from mmpose.registry import MODELS

    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.pop('pretrained', None)
    for part in ('backbone', 'neck', 'head'):
        if isinstance(model_cfg.get(part), dict):
            model_cfg[part]['init_cfg'] = None
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmpose')), config_errors(
                cfg, config_name or cfg.get('filename') or '<config>'):
        model = MODELS.build(model_cfg)
    check_state_fits(model, state, checkpoint,
                     config_name or cfg.get('filename') or '<config>')


def check_state_fits(model, state: Dict, checkpoint: str,
                     config_name: str) -> None:
    """Raises unless ``state``'s names and shapes are ``model``'s.

    Missing calibration buffers are fine (the head fills them in).

    Args:
        model (nn.Module): The model built from the config.
        state (dict): The checkpoint's state dict (``module.``-free).
        checkpoint (str): The checkpoint file, for the message.
        config_name (str): The config file, for the message.

    Raises:
        InputError: naming both files, the landmark counts when they
            differ, and the first missing, unexpected or mis-shaped tensor.
    """
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [
        k for k in expected if k not in state
        and k.rsplit('.', 1)[-1] not in CALIBRATION_STATE_NAMES
    ]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        k for k in expected
        if k in state and tuple(state[k].shape) != expected[k]
    ]
    if not (missing or unexpected or mismatched):
        return
    parts = []
    key = 'head.final_layer.weight'
    if key in state and key in expected and \
            tuple(state[key].shape)[:1] != expected[key][:1]:
        parts.append(f'the checkpoint has {state[key].shape[0]} landmarks, '
                     f'the config {expected[key][0]}')
    if mismatched:
        k = mismatched[0]
        parts.append(f'{len(mismatched)} tensor(s) of another shape, e.g. {k}'
                     f' {tuple(state[k].shape)} in the checkpoint vs '
                     f'{expected[k]} in the model')
    if missing:
        parts.append(f'{len(missing)} tensor(s) missing, e.g. {missing[0]}')
    if unexpected:
        parts.append(f'{len(unexpected)} unexpected tensor(s), e.g. '
                     f'{unexpected[0]}')
    raise InputError(
        f'checkpoint {checkpoint} does not fit the model of config '
        f'{config_name}: ' + '; '.join(parts) + '. Use the config the '
        'checkpoint was trained with')


def precheck_checkpoint(cfg: Config,
                        checkpoint: str,
                        config_name: Optional[str] = None,
                        allow_config_mismatch: Optional[bool] = None
                        ) -> None:
    """Checks a checkpoint before a Runner is built to load it.

    Loads it with ``weights_only=True``
    (:func:`~mmchh.utils.checkpoint.load_checkpoint_file`), refuses
    non-finite weights and checks that it fits ``cfg.model``
    (:func:`check_state_fits_model`), so a missing, empty, truncated,
    malicious, broken or foreign file ends in one line naming it instead of
    a traceback from deep inside the Runner -- or, worse, a run with random
    weights.

    Args:
        cfg (Config): The run's config.
        checkpoint (str): The checkpoint file.
        config_name (str, optional): The config file, for the messages.
        allow_config_mismatch (bool, optional): Also compare the config's
            grid, landmark count and names with the checkpoint's recipe
            (:func:`~mmchh.utils.checkpoint_recipe.
            check_config_matches_checkpoint`): False refuses a difference,
            True warns. None (training from a checkpoint, where another
            grid is a deliberate fine-tuning) does not compare.

    Raises:
        CheckpointError | InputError: naming the file and the reason.
    """
    ckpt = load_checkpoint_file(checkpoint)
    state = checkpoint_state_dict(ckpt, checkpoint)
    check_finite_weights(state, checkpoint)
    check_state_fits_model(cfg, state, checkpoint, config_name)
    if allow_config_mismatch is not None:
        check_config_matches_checkpoint(
            cfg, checkpoint_recipe(ckpt), config_name
            or cfg.get('filename') or '<config>', checkpoint,
            allow_config_mismatch)


def checked_run_config(args) -> Config:
    """The run config of a tool that loads a checkpoint into its config
    (``tools/test.py``, ``tools/calibrate.py``), checked before anything is
    built: the checkpoint must exist, the config loads with the tool's
    options (:func:`load_run_config`) and the checkpoint fits it
    (:func:`precheck_checkpoint`, the recipe compared unless
    ``--allow-config-mismatch``).

    Args:
        args (argparse.Namespace): The tool's ``config``, ``checkpoint``,
            ``cfg_options``, ``work_dir``, ``launcher`` and
            ``allow_config_mismatch``.

    Returns:
        Config: The run's config (``load_from`` not set yet).

    Raises:
        InputError | CheckpointError: naming the file and the reason.
    """
    if not osp.exists(args.checkpoint):
        raise InputError(f'checkpoint {args.checkpoint} does not exist')
    cfg = load_run_config(args.config, args.cfg_options, args.work_dir,
                          args.launcher)
    precheck_checkpoint(cfg, args.checkpoint, args.config,
                        allow_config_mismatch=args.allow_config_mismatch)
    return cfg
