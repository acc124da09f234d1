# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Config handling shared by tools/train.py and tools/test.py."""
import copy
import os.path as osp
from typing import Dict, Optional

from mmengine.config import Config, DictAction  # noqa: F401  (re-export)

from .errors import InputError


def _propagate_data_root(cfg: Config, cfg_options: dict) -> None:
    """``--cfg-options data_root=DIR`` for every dataloader's dataset.

    A config's datasets copy its top-level ``data_root`` when the file is
    read, so the option alone would change nothing and train on the
    config's own folder without a word. A dataloader whose dataset names
    its own ``data_root`` in the options keeps it.
    """
    for key in [k for k in cfg.keys() if k.endswith('_dataloader')]:
        dataset = (cfg.get(key) or {}).get('dataset')
        if isinstance(dataset, dict) and 'data_root' in dataset and \
                f'{key}.dataset.data_root' not in cfg_options:
            dataset['data_root'] = cfg_options['data_root']


def load_run_config(config: str,
                    cfg_options: Optional[dict] = None,
                    work_dir: Optional[str] = None,
                    launcher: str = 'none') -> Config:
    """Loads a config the way MMPose's tools do, plus mmchh's defaults.

    * ``--cfg-options`` are merged last; a top-level ``data_root`` among
      them reaches every dataloader's dataset (MMEngine alone would leave
      the datasets on the config's own folder).
    * The work dir is ``work_dir`` if given, else the config's, else
      ``./work_dirs/<config name>``.
    * Distributed runs without CUDA use the gloo backend (NCCL needs GPUs)
      and CPU DDP (no device ids), so ``tools/dist_train.sh`` also works on
      CPU machines (see also :func:`init_cpu_distributed`).

    Args:
        config (str): Config file path.
        cfg_options (dict, optional): Overrides, as parsed by ``DictAction``.
        work_dir (str, optional): Output folder.
        launcher (str): 'none', 'pytorch', 'slurm' or 'mpi'.

    Returns:
        Config: ready for ``Runner.from_cfg``.

    Raises:
        InputError: if the config file does not exist.
    """
    if not osp.isfile(config):
        raise InputError(f'config file {config} does not exist')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
        if 'data_root' in cfg_options:
            _propagate_data_root(cfg, cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config))[0])
    cfg.launcher = launcher
    if launcher != 'none':
        import torch
        if not torch.cuda.is_available():
            cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
            cfg.env_cfg.dist_cfg['backend'] = 'gloo'
            # MMEngine passes device_ids=[LOCAL_RANK] to DDP unless told
            # otherwise; CPU modules need device_ids=None
            if cfg.get('model_wrapper_cfg') is None:
                cfg.model_wrapper_cfg = dict(
                    type='MMDistributedDataParallel',
                    device_ids=None,
                    broadcast_buffers=False,
                    find_unused_parameters=cfg.get('find_unused_parameters',
                                                   False))
    return cfg


def init_cpu_distributed(cfg: Config) -> None:
    """Starts the gloo process group for a torchrun launch without CUDA.

    MMEngine's ``init_dist`` for the pytorch launcher always calls
    ``torch.cuda.set_device``, which fails on a CPU-only machine. The Runner
    skips ``init_dist`` when a process group already exists, so on CPU we
    create it here from torchrun's environment variables. With CUDA, or
    without a launcher, this does nothing.
    """
    import torch
    import torch.distributed as dist
    if cfg.get('launcher', 'none') != 'pytorch' or torch.cuda.is_available(
    ) or dist.is_initialized():
        return
    dist.init_process_group(backend='gloo')


def enable_amp(cfg: Config) -> None:
    """Switches the optimizer wrapper to MMEngine's AMP wrapper.

    Raises:
        InputError: without a CUDA device (MMEngine's AMP wrapper supports
            GPUs only; bf16 CPU autocast gains nothing for this model), or
            with an optimizer wrapper other than ``OptimWrapper``.
    """
    import torch
    if not torch.cuda.is_available():
        raise InputError('--amp needs a CUDA GPU; none is available here. '
                           'Run without --amp on CPU.')
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper == 'AmpOptimWrapper':
        return
    if wrapper != 'OptimWrapper':
        raise InputError(f'--amp: optim_wrapper type {wrapper} is not '
                           'OptimWrapper; set AMP in the config instead')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')


def temperature_hook_config(cfg: Config) -> dict:
    """The config's ``TemperatureScalingHook`` entry, or an empty dict."""
    for hook in cfg.get('custom_hooks', []) or []:
        if hook.get('type') == 'TemperatureScalingHook':
            return dict(hook)
    return {}


def set_uncertainty_out_dir(cfg: Config, out_dir: str,
                            overwrite: bool = False) -> None:
    """Points every ``UncertaintyMetric`` of the test evaluator at
    ``out_dir`` (its plots and JSON), keeping a configured one unless
    ``overwrite``."""
    evaluators = cfg.test_evaluator if isinstance(
        cfg.test_evaluator, (list, tuple)) else [cfg.test_evaluator]
    for evaluator in evaluators:
        if evaluator.get('type') == 'UncertaintyMetric' and (
                overwrite or not evaluator.get('out_dir')):
            evaluator['out_dir'] = out_dir


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
            cfg.get('default_scope', 'mmpose')):
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
    from .checkpoint import CALIBRATION_STATE_NAMES
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
                        config_name: Optional[str] = None) -> None:
    """Checks a checkpoint before a Runner is built to load it.

    Loads it with ``weights_only=True``
    (:func:`~mmchh.utils.checkpoint.load_checkpoint_file`), refuses
    non-finite weights and checks that it fits ``cfg.model``
    (:func:`check_state_fits_model`), so a missing, empty, truncated,
    malicious, broken or foreign file ends in one line naming it instead of
    a traceback from deep inside the Runner -- or, worse, a run with random
    weights.

    Raises:
        CheckpointError | InputError: naming the file and the reason.
    """
    from .checkpoint import (check_finite_state, checkpoint_state_dict,
                             load_checkpoint_file)
    ckpt = load_checkpoint_file(checkpoint)
    state = checkpoint_state_dict(ckpt, checkpoint)
    check_finite_state(state, checkpoint)
    check_state_fits_model(cfg, state, checkpoint, config_name)


def resume_checkpoint(cfg: Config) -> Optional[str]:
    """The checkpoint a ``resume=True`` run of ``cfg`` will load, or None.

    ``cfg.load_from`` if set, else the work dir's latest checkpoint (what
    MMEngine's ``--resume`` auto mode picks: the ``last_checkpoint`` file).
    """
    if cfg.get('load_from'):
        return cfg.load_from
    from mmengine.runner import find_latest_checkpoint
    work_dir = cfg.get('work_dir')
    if not work_dir or not osp.isdir(work_dir):
        return None
    return find_latest_checkpoint(work_dir)
