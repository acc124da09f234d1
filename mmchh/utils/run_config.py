# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Config handling shared by tools/train.py and tools/test.py."""
import os.path as osp
from typing import Optional

from mmengine.config import Config, DictAction  # noqa: F401  (re-export)


def load_run_config(config: str,
                    cfg_options: Optional[dict] = None,
                    work_dir: Optional[str] = None,
                    launcher: str = 'none') -> Config:
    """Loads a config the way MMPose's tools do, plus mmchh's defaults.

    * ``--cfg-options`` are merged last.
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
    """
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file {config} does not exist')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
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
        RuntimeError: without a CUDA device (MMEngine's AMP wrapper supports
            GPUs only; bf16 CPU autocast gains nothing for this model).
    """
    import torch
    if not torch.cuda.is_available():
        raise RuntimeError('--amp needs a CUDA GPU; none is available here. '
                           'Run without --amp on CPU.')
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper == 'AmpOptimWrapper':
        return
    if wrapper != 'OptimWrapper':
        raise RuntimeError(f'--amp: optim_wrapper type {wrapper} is not '
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
