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
Everything else comes from the base.

The config is never written over an existing file unless asked
(``force``), and never into a conversion folder (one holding
``conversion.json``, or inside one), where a re-conversion would own it.
"""
import os.path as osp
from typing import List, Optional, Tuple

from mmchh.utils.errors import InputError
from mmchh.utils.io import atomic_write_text
from .converters.coco_writer import CONVERSION_MARKER

__all__ = [
    'LANDMARK_LOADERS', 'read_landmark_names', 'landmark_config_source',
    'write_landmark_config'
]

#: The dataloaders of a landmark config (one per converted split).
LANDMARK_LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader',
                    'calib_dataloader')
_TOOL = 'tools/landmark_config.py'


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


def landmark_config_source(data_root: str, config: str,
                           base: str) -> Tuple[str, int]:
    """The text of a config deriving from ``base`` for ``data_root``.

    Args:
        data_root (str): The converted folder.
        config (str): Where the config will be written (its ``_base_`` is
            relative to it, as MMEngine resolves it).
        base (str): The generic config, e.g.
            ``configs/landmark/unet_r34_onehot.py``.

    Returns:
        tuple: (text, number of landmarks).
    """
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
        'model = dict(head=dict(out_channels=num_keypoints))',
    ]
    # the metainfo by its full path too: inference reads the names from
    # the config without building a dataset
    lines += ["metainfo = dict(from_file=data_root + 'metainfo.py')", '']
    lines += [
        f'{loader} = dict(\n'
        '    dataset=dict(data_root=data_root, metainfo=metainfo,\n'
        '                 num_keypoints=num_keypoints))'
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


def write_landmark_config(data_root: str, config: str, base: str,
                          force: bool = False) -> int:
    """Writes :func:`landmark_config_source` to ``config`` (atomically).

    Args:
        data_root (str): The converted folder.
        config (str): The config file to write.
        base (str): The generic config it derives from.
        force (bool): Replace an existing ``config``.

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
    _check_destination(config, force)
    text, num = landmark_config_source(data_root, config, base)
    atomic_write_text(config, text)
    return num
