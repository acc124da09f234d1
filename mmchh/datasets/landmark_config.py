# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""A training config for one folder converted by ``convert_landmarks``.

MMEngine reads a config before any ``--cfg-options`` and cannot follow a
top-level ``data_root`` into the datasets that copied it, nor can a config
read the landmark count from the converted folder. So the generic config
(``configs/landmark/unet_r34_onehot.py``) is made concrete for one folder
by a small derived config written here: the folder as every dataset's
``data_root`` and its metainfo's landmark count as the head's
``out_channels`` and the datasets' ``num_keypoints`` (which
:class:`~mmchh.datasets.CephalometricDataset` checks against the data).
Everything else comes from the base, unless asked:

- ``input_size`` (W, H; multiples of 32, for the U-Net's skips) sets the
  codec, every pipeline step that carries a size (``TopdownAffine``, the
  ``encoder`` of ``GenerateTarget``/``GenerateTargetIfAnnotated``) and the
  head's decoder; ``heatmap_size`` (default: the input size) may be the
  input divided by 2, 4 or 8, and the U-Net decoder then stops that many
  blocks early (as ``configs/ceph/unet_r34_onehot_quarter.py``). The
  augmentation keeps its reference size (``ElasticDeformation``'s
  ``reference_size``, the shift as a fraction of the box): its strength
  scales to the input, the same share of the image at any size.
- ``epochs`` sets ``train_cfg.max_epochs``; the base's learning-rate
  milestones are fractions of it (``FractionMultiStepLR``).

The config is never written over an existing file unless asked
(``force``), and never into a conversion folder (one holding
``conversion.json``, or inside one), where a re-conversion would own it.
"""
import os.path as osp
from typing import List, Optional, Tuple

from mmchh.utils.errors import InputError
from mmchh.utils.io import atomic_write_text
from .conversion_folder import CONVERSION_MARKER

__all__ = [
    'HEATMAP_STRIDES', 'LANDMARK_LOADERS', 'read_landmark_names',
    'recipe_lines', 'landmark_config_source', 'write_landmark_config'
]

#: The dataloaders of a landmark config (one per converted split).
LANDMARK_LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader',
                    'calib_dataloader')
_TOOL = 'tools/landmark_config.py'
#: input / heatmap ratios the U-Net decoder gives (5, 4, 3, 2 blocks).
HEATMAP_STRIDES = (1, 2, 4, 8)


def read_landmark_names(data_root: str) -> List[str]:
    """The keypoint names of a converted folder's ``metainfo.py``, in order.

    Raises:
        InputError: naming the folder and the fix, when it holds no
            conversion's ``metainfo.py`` or the file is unusable.
    """
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    path = osp.join(data_root, 'metainfo.py')
    if not osp.isfile(path):
        raise InputError(
            f'{data_root}: no metainfo.py; give the output folder of '
            'tools/convert_landmarks.py (it writes metainfo.py there)')
    try:
        meta = parse_pose_metainfo(dict(from_file=path))
    except Exception as e:  # a hand-edited file: name it
        raise InputError(f'{path}: not a usable MMPose metainfo file '
                         f'({type(e).__name__}: {e})') from None
    names = meta['keypoint_id2name']
    return [names[i] for i in range(meta['num_keypoints'])]


def _check_size(option: str, size) -> Tuple[int, int]:
    if size is None or len(size) != 2 or not all(
            isinstance(v, int) and v >= 1 for v in size):
        raise InputError(f'{option} must be two integers W H >= 1; got '
                         f'{size!r}')
    return int(size[0]), int(size[1])


def _heatmap_stride(input_size: Tuple[int, int],
                    heatmap_size: Tuple[int, int]) -> int:
    """The input / heatmap ratio: 1, 2, 4 or 8, the same along both axes.
    """
    for stride in HEATMAP_STRIDES:
        if (input_size[0] == heatmap_size[0] * stride
                and input_size[1] == heatmap_size[1] * stride):
            return stride
    raise InputError(
        f'--heatmap-size {heatmap_size[0]} {heatmap_size[1]}: must be the '
        f'input size {input_size[0]} {input_size[1]} divided by one of '
        f'{", ".join(map(str, HEATMAP_STRIDES))} (the U-Net decoder\'s '
        'blocks)')


def recipe_lines(input_size=None, heatmap_size=None,
                 epochs: Optional[int] = None) -> List[str]:
    """The lines that change the base's input/heatmap size and epochs
    (none when all are None); the loaders take ``train_pipeline`` and
    ``val_pipeline`` when a size is given.

    Raises:
        InputError: naming the option: a size that is not two positive
            integers, an input not a multiple of 32, a heatmap size that is
            not the input over 1, 2, 4 or 8, epochs below 1, or a heatmap
            size without an input size.
    """
    lines = []
    if epochs is not None:
        if isinstance(epochs, bool) or not isinstance(epochs,
                                                      int) or epochs < 1:
            raise InputError(f'--epochs must be an integer >= 1; got '
                             f'{epochs!r}')
        lines += [
            f'# {epochs} epochs; the learning-rate milestones are fractions '
            'of them', f'train_cfg = dict(max_epochs={epochs})', ''
        ]
    if input_size is None:
        if heatmap_size is not None:
            raise InputError('--heatmap-size needs --input-size')
        return lines
    input_size = _check_size('--input-size', input_size)
    if input_size[0] % 32 or input_size[1] % 32:
        raise InputError(f'--input-size {input_size[0]} {input_size[1]}: W '
                         'and H must be multiples of 32 (the U-Net\'s '
                         'skips)')
    heatmap_size = input_size if heatmap_size is None else _check_size(
        '--heatmap-size', heatmap_size)
    blocks = 5 - HEATMAP_STRIDES.index(_heatmap_stride(input_size,
                                                       heatmap_size))
    lines += [
        f'# input {input_size[0]}x{input_size[1]}, heatmaps '
        f'{heatmap_size[0]}x{heatmap_size[1]}: the codec, every pipeline',
        '# step that carries a size, and the decoder; the augmentation',
        '# keeps its reference size (its strength scales to the input)',
        f'input_size = {input_size!r}',
        f'heatmap_size = {heatmap_size!r}',
        'codec = dict(_base_.codec, input_size=input_size, '
        'heatmap_size=heatmap_size)',
        'train_pipeline, val_pipeline = ([',
        "    dict(t, input_size=input_size) if t.type == 'TopdownAffine' "
        'else',
        "    dict(t, encoder=codec) if 'encoder' in t else t",
        '    for t in pipeline',
        '] for pipeline in (_base_.train_pipeline, _base_.val_pipeline))',
    ]
    if blocks < 5:
        lines += [
            '# heatmaps at 1/%d of the input: the decoder\'s first %d blocks'
            % (2**(5 - blocks), blocks),
            'decoder_channels = _base_.model.neck.decoder_channels[:%d]' %
            blocks,
        ]
    return lines + ['']


def _model_line(input_size, heatmap_size) -> str:
    """The written config's ``model``: the landmark count, and with a
    size the codec (and the shortened decoder)."""
    head = 'out_channels=num_keypoints'
    if input_size is None:
        return f'model = dict(head=dict({head}))'
    head += ', decoder=codec'
    if tuple(heatmap_size or input_size) == tuple(input_size):
        return f'model = dict(head=dict({head}))'
    return ('model = dict(\n    neck=dict(decoder_channels=decoder_channels),'
            f'\n    head=dict(\n        {head},\n'
            '        in_channels=decoder_channels[-1]))')


def landmark_config_source(data_root: str,
                           config: str,
                           base: str,
                           input_size=None,
                           heatmap_size=None,
                           epochs: Optional[int] = None) -> Tuple[str, int]:
    """The text of a config deriving from ``base`` for ``data_root``.

    Args:
        data_root (str): The converted folder.
        config (str): Where the config will be written (its ``_base_`` is
            relative to it, as MMEngine resolves it).
        base (str): The generic config, e.g.
            ``configs/landmark/unet_r34_onehot.py``.
        input_size (tuple, optional): (W, H) of the network input.
        heatmap_size (tuple, optional): (W, H) of the heatmaps (default:
            the input size).
        epochs (int, optional): Training epochs.

    Returns:
        tuple: (text, number of landmarks).
    """
    recipe = recipe_lines(input_size, heatmap_size, epochs)
    sized = input_size is not None
    names = read_landmark_names(data_root)
    root = osp.abspath(data_root).replace('\\', '/').rstrip('/') + '/'
    base_ref = _base_reference(base, config)
    shown = ', '.join(names[:10]) + (' ...' if len(names) > 10 else '')
    lines = [
        f'# Written by {_TOOL} for the landmarks converted into',
        f'# {root} ({len(names)}: {shown}).',
        '# Write it again after converting other keypoints into the folder.',
        f'_base_ = [{base_ref!r}]',
        '',
        f'data_root = {root!r}',
        f'num_keypoints = {len(names)}',
        '',
        *recipe,
        _model_line(input_size, heatmap_size),
    ]
    # the metainfo by its full path too: inference reads the names from
    # the config without building a dataset
    lines += ["metainfo = dict(from_file=data_root + 'metainfo.py')", '']
    lines += [
        f'{loader} = dict(\n'
        '    dataset=dict(data_root=data_root, metainfo=metainfo,\n'
        '                 num_keypoints=num_keypoints%s))' %
        ((',\n                 pipeline=' +
          ('train_pipeline' if loader == 'train_dataloader' else
           'val_pipeline')) if sized else '')
        for loader in LANDMARK_LOADERS
    ]
    return '\n'.join(lines) + '\n', len(names)


def _base_reference(base: str, config: str) -> str:
    """``base`` as the written ``config``'s ``_base_`` entry: relative to
    the config's folder when the config is written inside the checkout
    that holds ``base`` (the folder above its ``configs/``), so the pair
    moves together; else absolute (a relative path from elsewhere would
    break as soon as either folder moves)."""
    base, folder = osp.abspath(base), osp.dirname(osp.abspath(config))
    checkout = _checkout_of(base)
    if checkout is None or osp.commonpath([checkout, folder]) != checkout:
        return base.replace(osp.sep, '/')
    return osp.relpath(base, folder).replace(osp.sep, '/')


def _checkout_of(base: str) -> Optional[str]:
    """The folder holding the ``configs/`` folder ``base`` lies in."""
    parent = osp.dirname(base)
    while osp.dirname(parent) != parent:
        if osp.basename(parent) == 'configs':
            return osp.dirname(parent)
        parent = osp.dirname(parent)
    return None


def _conversion_holding(folder: str) -> Optional[str]:
    """The conversion folder (holding the marker) that ``folder`` is or
    lies in; None when there is none."""
    folder = osp.realpath(folder)
    while True:
        if osp.isfile(osp.join(folder, CONVERSION_MARKER)):
            return folder
        parent = osp.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _check_destination(config: str, force: bool) -> None:
    """Refuses a ``config`` path the tool must not write (see
    :func:`write_landmark_config`)."""
    folder = osp.dirname(osp.abspath(config))
    if not osp.isdir(folder):
        raise InputError(f'{config}: folder {folder} does not exist')
    conversion = _conversion_holding(folder)
    if conversion is not None:
        raise InputError(
            f'{config}: inside the conversion folder {conversion} (it holds '
            f'{CONVERSION_MARKER}; a re-conversion replaces it as a whole); '
            'write the config elsewhere (--force does not change this)')
    if osp.isdir(config):
        raise InputError(f'{config}: is a folder, not a config file')
    if osp.lexists(config) and not force:
        raise InputError(f'{config}: file exists; pass --force to replace '
                         'it')


def write_landmark_config(data_root: str,
                          config: str,
                          base: str,
                          force: bool = False,
                          input_size=None,
                          heatmap_size=None,
                          epochs: Optional[int] = None) -> int:
    """Writes :func:`landmark_config_source` to ``config`` (atomically).

    Args:
        data_root (str): The converted folder.
        config (str): The config file to write.
        base (str): The generic config it derives from.
        force (bool): Replace an existing ``config``.
        input_size, heatmap_size, epochs: As for
            :func:`landmark_config_source` (None: the base's).

    Returns:
        int: The number of landmarks.

    Raises:
        InputError: the folder holds no conversion, the base config does
            not exist, ``config`` would overwrite the base, exists (without
            ``force``), is a folder, or lies in a conversion folder (even
            with ``force``).
    """
    if not osp.isfile(base):
        raise InputError(f'--base {base}: config file does not exist')
    if osp.abspath(config) == osp.abspath(base):
        raise InputError(f'{config}: would overwrite the base config')
    recipe_lines(input_size, heatmap_size, epochs)  # options first
    _check_destination(config, force)
    text, num = landmark_config_source(data_root, config, base, input_size,
                                       heatmap_size, epochs)
    atomic_write_text(config, text)
    return num
