# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Config handling shared by tools/train.py and tools/test.py: loading,
``--cfg-options`` checks, build errors as one line. Whether a checkpoint
fits the config's model needs the model built, which utils never does:
:mod:`mmchh.models.checkpoint_fit`."""
import argparse
import ast
import contextlib
import os.path as osp
import re
from numbers import Real
from typing import Any, Iterator, List, Optional, Tuple

from mmengine.config import Config, DictAction

from .errors import InputError


class CfgOptionsAction(DictAction):
    """``--cfg-options key=value ...``: MMEngine's ``DictAction``, with a
    pair lacking ``=`` or a key one argparse line (exit status 2) naming
    it, where ``DictAction`` ends in a traceback."""

    def __call__(self, parser, namespace, values, option_string=None):
        for pair in values or []:
            key = pair.split('=', 1)[0]
            if '=' not in pair or not key or any(
                    not part for part in key.split('.')):
                raise argparse.ArgumentError(
                    self, f'{pair!r} is not a key=value pair with a dotted '
                    'key (e.g. train_cfg.max_epochs=2)')
        super().__call__(parser, namespace, values, option_string)


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
        InputError: if the config file does not exist, has a syntax error
            (``file:line: message``), or an option does not fit it
            (:func:`check_cfg_options`).
    """
    if not osp.isfile(config):
        raise InputError(f'config file {config} does not exist')
    cfg = _read_config(config)
    if cfg_options:
        check_cfg_options(cfg, cfg_options, config)
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


def _read_config(config: str) -> Config:
    """``Config.fromfile`` with a syntax error as one line: ``config
    file:line: message`` (MMEngine's error names no file)."""
    try:
        return Config.fromfile(config)
    except SyntaxError as e:
        try:
            with open(config, encoding='utf-8') as f:
                ast.parse(f.read())
        except SyntaxError:
            raise InputError(f'config {config}:{e.lineno}: {e.msg}') from e
        raise InputError(f'config {config}: a base config it inherits, line '
                         f'{e.lineno}: {e.msg}') from e


def _walk(cfg: Any, key: str) -> Tuple[bool, Any]:
    """Whether ``cfg`` holds the dotted ``key`` (list items by index, as
    ``merge_from_dict`` takes them), and its value."""
    node = cfg
    for part in key.split('.'):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and \
                int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def _fits(old: Any, new: Any) -> bool:
    """Whether ``new`` may replace the config's ``old`` value: a number for
    a number, a bool for a bool (or None, which often switches a part
    off); anything where the config has None, text or a structure."""
    if new is None:
        return True
    if isinstance(old, bool):
        return isinstance(new, bool)
    if isinstance(old, Real):
        return isinstance(new, Real) and not isinstance(new, bool)
    return True


#: Top-level keys read after the config file (besides the Runner's
#: arguments and every ``*_dataloader``, ``*_evaluator``, ``*_cfg``).
_READ_AFTER_LOADING = frozenset(
    ('data_root', 'model_wrapper_cfg', 'find_unused_parameters', 'compile',
     'custom_imports', 'strategy'))


def _check_top_level(key: str, sections, config: str) -> None:
    """Refuses a top-level variable that nothing reads any more."""
    if key in sections or key in _READ_AFTER_LOADING or key.endswith(
            ('_dataloader', '_evaluator', '_cfg')):
        return
    raise InputError(
        f'--cfg-options {key}: {key} is a variable of config {config} that '
        'its other keys copied when the file was read, so changing it would '
        'change nothing; set the keys that use it (e.g. '
        'model.head.decoder.input_size), write a derived config, or for a '
        'converted folder tools/landmark_config.py --input-size W H '
        '[--heatmap-size W H] [--epochs N]')


def check_cfg_options(cfg: Config, cfg_options: dict, config: str) -> None:
    """Refuses ``--cfg-options`` that cannot mean what they say.

    MMEngine merges any key silently, so a typo trains or tests with the
    config's own value; and a text where the config has a number fails deep
    inside the Runner. Refused, naming the key:

    * a dotted key whose parent the config does not have
      (``modle.head.x=1``); a new top-level key, a new key of an existing
      section or of a section the Runner takes (``randomness.seed=0``) is
      allowed (the build then names a key the object does not take:
      :func:`config_errors`);
    * a value of another kind than the config's: text where it has a
      number (``train_cfg.max_epochs=abc``) or a bool;
    * a top-level variable of the config that nothing reads after the file
      is read (``input_size=(128,160)``, ``codec=...``, ``num_keypoints``):
      MMEngine resolved it into the keys that use it, so changing it would
      change nothing (``data_root`` is carried into the datasets, see
      :func:`load_run_config`; Runner sections, ``*_dataloader`` and the
      keys the tools read stay allowed).

    Raises:
        InputError: naming the option, the config and what it holds.
    """
    import inspect

    from mmengine.runner import Runner
    # sections the Runner takes that a config may leave out (randomness...)
    sections = set(inspect.signature(Runner.__init__).parameters)
    tree = cfg.to_dict()
    for key, value in cfg_options.items():
        if '.' not in key and key in tree:
            _check_top_level(key, sections, config)
        parent = key.rsplit('.', 1)[0] if '.' in key else None
        if parent is not None and not _walk(tree, parent)[0] and \
                parent not in sections:
            raise InputError(
                f'--cfg-options {key}: config {config} has no {parent} '
                '(unknown key; check the spelling)')
        exists, old = _walk(tree, key)
        if exists and not _fits(old, value):
            kind = 'True or False' if isinstance(old, bool) else \
                'a number'
            raise InputError(
                f'--cfg-options {key}={value!r}: config {config} has '
                f'{old!r} there; give {kind}')


def _typed_paths(node: Any, prefix: str = '') -> Iterator[Tuple[str, dict]]:
    """``(dotted path, dict)`` of every dict in ``node`` with a ``type``."""
    if isinstance(node, dict):
        if 'type' in node:
            yield prefix, node
        items = node.items()
    elif isinstance(node, (list, tuple)):
        items = enumerate(node)
    else:
        return
    for k, v in items:
        yield from _typed_paths(v, f'{prefix}.{k}' if prefix else str(k))


def _class_names(value: Any) -> List[str]:
    """The names of the classes a config ``type`` builds and derives from
    (looked up in MMPose's registries), or just its own name."""
    if isinstance(value, type):
        return [c.__name__ for c in value.__mro__]
    name = str(value).rsplit('::', 1)[-1]
    from mmengine.registry import Registry
    from mmpose import registry
    for reg in vars(registry).values():
        found = reg.get(name) if isinstance(reg, Registry) else None
        if isinstance(found, type):
            return [c.__name__ for c in found.__mro__]
    return [name.rsplit('.', 1)[-1]]


def _translate_build_error(cfg: Config, error: Exception,
                           config: str) -> Optional[InputError]:
    """The one-line error of an object the config describes but the
    registry cannot build, or None when ``error`` does not come from the
    config (a bug: it keeps its traceback)."""
    text = str(error.args[0]) if error.args else str(error)
    found = re.search(r"(\w+)\.__init__\(\) got an unexpected keyword "
                      r"argument '(\w+)'", text)
    if isinstance(error, TypeError) and found:
        cls, arg = found.groups()
        paths: List[str] = [
            f'{path}.{arg}' if path else arg
            for path, node in _typed_paths(cfg.to_dict())
            if arg in node and cls in _class_names(node['type'])
        ]
        if paths:
            return InputError(
                f'config {config}: {paths[0]}: {cls} takes no argument '
                f'{arg!r} (unknown key; check the spelling)')
    found = re.match(r'(\S+) is not in the (\S+) registry', text)
    if isinstance(error, KeyError) and found:
        paths = [
            path for path, node in _typed_paths(cfg.to_dict())
            if node['type'] == found[1]
        ]
        if paths:
            return InputError(
                f'config {config}: {paths[0]}.type: {found[1]} is not in '
                f'the {found[2]} registry (a typo, or the module that '
                'registers it is missing from custom_imports)')
    return None


@contextlib.contextmanager
def config_errors(cfg: Config, config: str) -> Iterator[None]:
    """Turns the build errors that the config causes into one line.

    An object of the config given a key its class does not take (MMEngine
    passes every key on: ``TypeError: ... unexpected keyword argument``)
    or a ``type`` no registry holds (``KeyError``) becomes an
    :class:`InputError` naming the dotted key, the class or registry and
    the config. An error that no key of the config explains is re-raised
    as it is.

    Args:
        cfg (Config): The config the work inside builds from.
        config (str): Its file, for the message.
    """
    try:
        yield
    except (TypeError, KeyError) as e:
        translated = _translate_build_error(cfg, e, config)
        if translated is None:
            raise
        raise translated from e


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
    """Switches the optimizer wrapper to mixed precision: MMEngine's
    ``AmpOptimWrapper`` (fp16, loss scaling) on CUDA, mmchh's
    ``CpuAmpOptimWrapper`` (bf16 autocast) on a CPU.

    Raises:
        InputError: with an optimizer wrapper other than ``OptimWrapper``.
    """
    import torch
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper in ('AmpOptimWrapper', 'CpuAmpOptimWrapper'):
        return
    if wrapper != 'OptimWrapper':
        raise InputError(f'--amp: optim_wrapper type {wrapper} is not '
                           'OptimWrapper; set AMP in the config instead')
    if torch.cuda.is_available():
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    else:
        cfg.optim_wrapper.type = 'CpuAmpOptimWrapper'


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
