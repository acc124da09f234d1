# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Keypoint names from a file (``convert_landmarks.py --keypoints-file``).

Two kinds of file give the names, in order:

- a text file, one name per line; blank lines and lines starting with
  ``#`` are ignored, spaces around a name are dropped;
- an MMPose metainfo file (``.py``, e.g. the ``metainfo.py`` a conversion
  writes, or a converted folder, meaning its ``metainfo.py``): its
  ``dataset_info`` dict is read as a Python literal (``ast.literal_eval``),
  never run, and the names taken from ``keypoint_info`` by ``id``.

An empty or repeated name, a file without names, or a metainfo file that
is not a literal ``dataset_info`` is an error naming the file (and line).
"""
import ast
import os.path as osp
from collections import Counter
from typing import List

from .errors import ConversionError

__all__ = ['read_keypoint_names']

_OPTION = '--keypoints-file'


def _read_text(path: str) -> str:
    try:
        with open(path, encoding='utf-8') as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConversionError(f'{_OPTION} {path}: cannot read it ({e})') \
            from None


def _names_from_lines(path: str, text: str) -> List[str]:
    names = []
    for number, line in enumerate(text.splitlines(), 1):
        name = line.strip()
        if not name or name.startswith('#'):
            continue
        if any(c.isspace() for c in name):
            raise ConversionError(
                f'{_OPTION} {path}:{number}: {name!r} holds a space; give '
                'one name per line')
        names.append(name)
    return names


def _dataset_info(path: str, text: str) -> dict:
    """The literal ``dataset_info = {...}`` of a metainfo file."""
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as e:
        raise ConversionError(
            f'{_OPTION} {path}:{e.lineno}: not a Python file ({e.msg})') \
            from None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == 'dataset_info'
                for t in node.targets):
            try:
                info = ast.literal_eval(node.value)
            except ValueError:
                info = None
            if not isinstance(info, dict):
                raise ConversionError(
                    f'{_OPTION} {path}:{node.lineno}: dataset_info is not a '
                    'literal dict (the file is read, never run)')
            return info
    raise ConversionError(f'{_OPTION} {path}: no dataset_info = {{...}} '
                          '(an MMPose metainfo file names its keypoints '
                          'there)')


def _names_from_metainfo(path: str, text: str) -> List[str]:
    keypoint_info = _dataset_info(path, text).get('keypoint_info')
    if not isinstance(keypoint_info, dict) or not all(
            isinstance(v, dict) and isinstance(v.get('id'), int)
            for v in keypoint_info.values()):
        raise ConversionError(
            f'{_OPTION} {path}: dataset_info has no keypoint_info of '
            'dict(name=..., id=...) entries')
    ids = sorted(v['id'] for v in keypoint_info.values())
    if ids != list(range(len(ids))):
        raise ConversionError(f'{_OPTION} {path}: keypoint_info ids must be '
                              f'0..{len(ids) - 1}; got {ids}')
    by_id = {v['id']: v.get('name') for v in keypoint_info.values()}
    names = [by_id[i] for i in ids]
    if not all(isinstance(n, str) for n in names):
        raise ConversionError(f'{_OPTION} {path}: every keypoint_info entry '
                              'needs a name')
    return [n.strip() for n in names]


def read_keypoint_names(path: str) -> List[str]:
    """The keypoint names a file gives, in order (see the module
    docstring).

    Args:
        path (str): A text file of names, a metainfo ``.py`` file, or a
            converted folder (its ``metainfo.py``).

    Returns:
        list[str]: at least one name, none empty or repeated.

    Raises:
        ConversionError: naming the file (and line) and what is wrong.
    """
    if osp.isdir(path):
        path = osp.join(path, 'metainfo.py')
    if not osp.isfile(path):
        raise ConversionError(f'{_OPTION} {path}: file does not exist')
    text = _read_text(path)
    names = _names_from_metainfo(path, text) if path.endswith('.py') \
        else _names_from_lines(path, text)
    if not names:
        raise ConversionError(f'{_OPTION} {path}: names no keypoint')
    if not all(names):
        raise ConversionError(f'{_OPTION} {path}: holds an empty name')
    repeated = sorted(n for n, c in Counter(names).items() if c > 1)
    if repeated:
        raise ConversionError(f'{_OPTION} {path}: names '
                              f'{", ".join(repeated)} more than once')
    return names
