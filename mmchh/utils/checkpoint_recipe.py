# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""What a checkpoint needs to predict -- its recipe -- as plain data.

A model predicts right only on the grid it was trained on: a config of the
same recipe at another input size runs without an error and answers tens of
pixels off. So every checkpoint carries, besides its weights, the recipe of
its predictions, and a config given with a checkpoint is checked against it.

The recipe is a dict of plain data (dicts, lists, tuples, text, numbers):

* ``model``: the model config itself (the codec's input and heatmap size
  and sub-pixel settings in ``head.decoder``, the landmark count in
  ``head.out_channels``, the data preprocessor's mean/std/bgr_to_rgb);
* ``test_pipeline``: the test pipeline (its load step and the
  ``TopdownAffine`` input size);
* ``default_scope`` and ``dataset_type``;
* ``keypoint_names``: the landmark names, in order.

Where it is read from (:func:`checkpoint_recipe`):

1. ``meta['recipe']``, written at save time (:func:`add_recipe`: by the
   ``TemperatureScalingHook`` into every checkpoint of a training run and
   by calibration into ``calibrated.pth``);
2. else MMEngine's config text ``meta['cfg']`` (every checkpoint a Runner
   saved) read by :func:`parse_config_text`, which evaluates literals and
   ``dict(...)`` only and never runs the text (MMEngine's
   ``Config.fromstring`` writes it to a file and executes it: code from a
   file from elsewhere); the names then come from ``meta['dataset_meta']``;
3. else there is none (a plain state dict, or a config text that is not
   plain data): a config must be given (:func:`require_recipe`).
"""
import ast
import warnings
from typing import Any, Dict, List, Optional, Sequence

from .errors import InputError

__all__ = [
    'ConfigMismatchError', 'RECIPE_KEY', 'add_recipe',
    'check_config_matches_checkpoint', 'checkpoint_recipe',
    'config_differences', 'parse_config_text', 'recipe_config',
    'recipe_from_config', 'require_recipe'
]

#: The key of the recipe in a checkpoint's ``meta``.
RECIPE_KEY = 'recipe'
#: The layout of the recipe this module writes and reads.
RECIPE_VERSION = 1
#: What to do about a mismatch, in every message.
MISMATCH_HINT = ('use the config it was trained with or none (the '
                 'checkpoint carries its own), or allow the change with '
                 '--allow-config-mismatch (allow_config_mismatch=True in '
                 'Python)')


class ConfigMismatchError(InputError):
    """A config whose grid, landmark count or names are not those the
    checkpoint was trained with; the message names both files."""


# --------------------------------------------------------------------------
# plain data
# --------------------------------------------------------------------------
def _plain(value: Any, where: str) -> Any:
    """``value`` as plain data (``ConfigDict`` -> dict), or TypeError
    naming where something else is (a class, a function...)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f'{where}: a key that is not text')
        return {k: _plain(v, f'{where}.{k}') for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_plain(v, f'{where}.{i}') for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    raise TypeError(f'{where}: {type(value).__name__} is not plain data')


def _keypoint_names(dataset_meta: Optional[dict]) -> Optional[List[str]]:
    """The landmark names of a dataset metainfo, in order, or None."""
    id2name = (dataset_meta or {}).get('keypoint_id2name')
    if not isinstance(id2name, dict) or not id2name:
        return None
    try:
        return [str(id2name[i]) for i in range(len(id2name))]
    except KeyError:
        return None


def _test_dataset(cfg: Any) -> dict:
    """The test (else val) dataloader's dataset config of ``cfg``."""
    for loader in ('test_dataloader', 'val_dataloader'):
        section = cfg.get(loader) if hasattr(cfg, 'get') else None
        dataset = (section or {}).get('dataset') if isinstance(
            section, dict) else None
        if isinstance(dataset, dict) and dataset.get('pipeline'):
            return dataset
    return {}


def _make_recipe(values: Any,
                 dataset_meta: Optional[dict]) -> Optional[dict]:
    """The recipe of a config (a ``Config`` or the plain dict of its text),
    or None when it has no model or test pipeline or they are not plain."""
    model = values.get('model') if hasattr(values, 'get') else None
    dataset = _test_dataset(values)
    if not isinstance(model, dict) or not dataset:
        return None
    try:
        return _plain(
            dict(version=RECIPE_VERSION,
                 model=model,
                 test_pipeline=list(dataset['pipeline']),
                 default_scope=values.get('default_scope', 'mmpose'),
                 dataset_type=dataset.get('type') if isinstance(
                     dataset.get('type'), str) else None,
                 keypoint_names=_keypoint_names(dataset_meta)), 'recipe')
    except TypeError:
        return None


def recipe_from_config(cfg: Any,
                       dataset_meta: Optional[dict] = None
                       ) -> Optional[dict]:
    """The plain-data recipe of a run's config.

    Args:
        cfg (Config | dict): The run's config.
        dataset_meta (dict, optional): The dataset metainfo (its
            ``keypoint_id2name`` gives the names).

    Returns:
        dict | None: The recipe; None when the config has no model or test
        pipeline, or holds something that is not plain data there (a class
        object as a ``type``): such a checkpoint is read from its config
        text, or needs a config.
    """
    return _make_recipe(cfg, dataset_meta)


def add_recipe(meta: dict, cfg: Any,
               dataset_meta: Optional[dict] = None) -> None:
    """Stores the recipe of ``cfg`` in a checkpoint's ``meta`` (in place);
    ``dataset_meta`` defaults to ``meta['dataset_meta']``. Nothing is
    stored when the config is not plain data (the checkpoint must stay
    loadable with ``weights_only=True``)."""
    if dataset_meta is None:
        dataset_meta = meta.get('dataset_meta')
    recipe = recipe_from_config(cfg, dataset_meta)
    if recipe is not None:
        meta[RECIPE_KEY] = recipe


# --------------------------------------------------------------------------
# reading the config text without running it
# --------------------------------------------------------------------------
def _literal(node: ast.AST) -> Any:
    """The value of an expression of literals and ``dict(key=...)``;
    ValueError for anything else (a name, an attribute, another call)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
            node.func.id == 'dict' and not node.args and all(
                kw.arg is not None for kw in node.keywords):
        return {kw.arg: _literal(kw.value) for kw in node.keywords}
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise ValueError('a ** in a dict')
        return {_literal(k): _literal(v) for k, v in zip(node.keys,
                                                          node.values)}
    if isinstance(node, ast.List):
        return [_literal(v) for v in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(v) for v in node.elts)
    # numbers, text, True/False/None, negative numbers
    return ast.literal_eval(node)


def parse_config_text(text: str) -> Dict[str, Any]:
    """The top-level variables of a config text that are plain data.

    Reads MMEngine's ``pretty_text`` (``name = dict(...)`` lines) with
    Python's parser and evaluates only literals and ``dict(key=value)``
    calls; nothing in the text is run. A variable whose value is anything
    else (a name, an import, another call) is left out.

    Args:
        text (str): The config text, e.g. a checkpoint's ``meta['cfg']``.

    Returns:
        dict: variable name -> value.

    Raises:
        ValueError: If the text is not Python syntax.
    """
    try:
        tree = ast.parse(text)
    except SyntaxError as e:
        raise ValueError(f'not a config text (line {e.lineno}: '
                         f'{e.msg})') from e
    values = {}
    for statement in tree.body:
        if not (isinstance(statement, ast.Assign)
                and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name)):
            continue
        try:
            values[statement.targets[0].id] = _literal(statement.value)
        except (ValueError, TypeError, SyntaxError, RecursionError):
            continue
    return values


def checkpoint_recipe(ckpt: Any) -> Optional[dict]:
    """The recipe a loaded checkpoint carries, or None.

    Args:
        ckpt: What :func:`~mmchh.utils.checkpoint.load_checkpoint_file`
            returned.

    Returns:
        dict | None: ``meta['recipe']``, else the recipe read from the
        config text ``meta['cfg']`` (with the names of
        ``meta['dataset_meta']``), else None.
    """
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    if not isinstance(meta, dict):
        return None
    stored = meta.get(RECIPE_KEY)
    if isinstance(stored, dict) and stored.get('version') == \
            RECIPE_VERSION and isinstance(stored.get('model'), dict) and \
            stored.get('test_pipeline'):
        return stored
    text = meta.get('cfg')
    if not isinstance(text, str):
        return None
    try:
        values = parse_config_text(text)
    except ValueError:
        return None
    dataset_meta = meta.get('dataset_meta')
    return _make_recipe(values, dataset_meta if isinstance(
        dataset_meta, dict) else None)


def require_recipe(ckpt: Any, checkpoint: str) -> dict:
    """The checkpoint's recipe, or an :class:`InputError` asking for a
    config (a checkpoint written without one: a plain state dict, or a
    training config that is not plain data)."""
    recipe = checkpoint_recipe(ckpt)
    if recipe is None:
        raise InputError(
            f'checkpoint {checkpoint} carries no recipe (no model config '
            'readable as plain data in its meta: a plain state dict or a '
            'config with code in it); pass the config it was trained '
            'with (--config)')
    return recipe


def recipe_config(recipe: dict):
    """A ``Config`` holding what inference reads: ``model``,
    ``test_dataloader.dataset.pipeline`` (and its dataset ``type``) and
    ``default_scope``."""
    import copy

    from mmengine.config import Config
    dataset = dict(pipeline=copy.deepcopy(list(recipe['test_pipeline'])))
    if recipe.get('dataset_type'):
        dataset['type'] = recipe['dataset_type']
    return Config(
        dict(model=copy.deepcopy(recipe['model']),
             default_scope=recipe.get('default_scope', 'mmpose'),
             test_dataloader=dict(dataset=dataset)))


# --------------------------------------------------------------------------
# comparing a config with the checkpoint's recipe
# --------------------------------------------------------------------------
def _size(value: Any) -> Optional[tuple]:
    """A (w, h) size as a tuple of ints, or None."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        try:
            return tuple(int(v) for v in value)
        except (TypeError, ValueError):
            return None
    return None


def _affine_size(pipeline: Sequence) -> Optional[tuple]:
    """The input size of the pipeline's ``TopdownAffine`` step."""
    for step in pipeline or []:
        if isinstance(step, dict) and str(step.get('type', '')).rsplit(
                '.', 1)[-1] == 'TopdownAffine':
            return _size(step.get('input_size'))
    return None


def _facts(model: dict, pipeline: Sequence,
           names: Optional[List[str]]) -> Dict[str, Any]:
    """What a config and a recipe must agree on."""
    head = model.get('head') or {}
    decoder = head.get('decoder') or {}
    return {
        'input size': _size(decoder.get('input_size')),
        'heatmap size': _size(decoder.get('heatmap_size')),
        'TopdownAffine input size': _affine_size(pipeline),
        'landmark count': head.get('out_channels'),
        'landmark names': names,
    }


def _config_names(cfg) -> Optional[List[str]]:
    """The landmark names the config's test (else train) dataset declares,
    or None when it declares none that can be read."""
    from mmpose.apis.inference import dataset_meta_from_config
    for mode in ('test', 'train'):
        try:
            meta = dataset_meta_from_config(cfg, dataset_mode=mode)
        except Exception:  # noqa: B902  (no readable metainfo: no names)
            meta = None
        names = _keypoint_names(meta)
        if names:
            return names
    return None


def _show(key: str, value: Any) -> str:
    if isinstance(value, tuple):
        return 'x'.join(str(v) for v in value)
    if key == 'landmark names':
        return ', '.join(value[:4]) + (', ...' if len(value) > 4 else '')
    return str(value)


def config_differences(cfg, recipe: dict) -> List[tuple]:
    """How a config differs from a checkpoint's recipe.

    Compared: the codec's input and heatmap size, the test pipeline's
    ``TopdownAffine`` input size, the landmark count and (when both say)
    the landmark names. A fact one side does not state is not compared.

    Returns:
        list[tuple]: ``(what, the config's, the checkpoint's)`` in words,
        one per difference (empty when they agree).
    """
    plain = cfg.to_dict()
    ours = _facts(plain.get('model') or {},
                  _test_dataset(plain).get('pipeline'), _config_names(cfg))
    theirs = _facts(recipe['model'], recipe['test_pipeline'],
                    recipe.get('keypoint_names'))
    found = []
    for key, value in ours.items():
        other = theirs[key]
        if value is None or other is None or value == other:
            continue
        if key == 'landmark names' and len(value) == len(other):
            i = next(i for i, (a, b) in enumerate(zip(value, other))
                     if a != b)
            found.append((f'landmark {i} named', repr(value[i]),
                          repr(other[i])))
            continue
        found.append((key, _show(key, value), _show(key, other)))
    return found


def check_config_matches_checkpoint(cfg, recipe: Optional[dict],
                                    config_name: str, checkpoint: str,
                                    allow_mismatch: bool = False) -> None:
    """Refuses a config that predicts on another grid than the checkpoint.

    Args:
        cfg (Config): The config given with the checkpoint.
        recipe (dict | None): The checkpoint's (:func:`checkpoint_recipe`);
            None: nothing to compare with (a warning says so).
        config_name (str): The config file, for the message.
        checkpoint (str): The checkpoint file, for the message.
        allow_mismatch (bool): Warn instead of refusing (a deliberate
            change, e.g. testing at another resolution).

    Raises:
        ConfigMismatchError: naming both files and every difference.

    Warns:
        UserWarning: the same line when ``allow_mismatch``; or, without a
            recipe, that the config cannot be checked.
    """
    if recipe is None:
        warnings.warn(
            f'checkpoint {checkpoint} carries no recipe: config '
            f'{config_name} cannot be checked against the grid and '
            'landmarks it was trained with', UserWarning, stacklevel=2)
        return
    found = config_differences(cfg, recipe)
    if not found:
        return
    text = (f'config {config_name}: ' +
            ', '.join(f'{what} {ours}' for what, ours, _ in found) +
            f', but checkpoint {checkpoint} was trained with ' +
            ', '.join(f'{what} {theirs}' for what, _, theirs in found))
    if allow_mismatch:
        warnings.warn(text + '; going on with the config\'s, as allowed: '
                      'predictions may be off', UserWarning, stacklevel=2)
        return
    raise ConfigMismatchError(f'{text}; {MISMATCH_HINT}')
