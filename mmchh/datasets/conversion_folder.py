# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""What a converted folder holds, as both its writers (the converters) and
its readers (the dataset, the tools' split-leak check, ``landmark_config``)
see it: the marker file written last, what each split is for, and an
earlier conversion a killed run left aside.

Reading converted data needs only this module, never the converters.
"""
import os
import os.path as osp
import re
from typing import Dict, List, Optional

from mmchh.utils.run_lock import pid_alive

__all__ = [
    'CONVERSION_MARKER', 'SPLIT_ROLES', 'split_role', 'dead_siblings',
    'find_interrupted_conversion'
]

#: Written last into every conversion: marks a folder as a complete
#: conversion (and says what was converted, how).
CONVERSION_MARKER = 'conversion.json'

#: What each split is for (``info.role`` of its JSON).
SPLIT_ROLES = dict(train='train', val='val', calib='calib', test='test',
                   test1='test', test2='test')


def split_role(split: str) -> Optional[str]:
    """``'train'``, ``'val'``, ``'calib'`` or ``'test'`` for a split a
    converter writes; None for any other name."""
    return SPLIT_ROLES.get(split)


def _sibling_pattern(out_dir: str) -> 're.Pattern':
    """The names of ``out_dir``'s ``.tmp-``/``.old-`` siblings (kind, pid)."""
    return re.compile(re.escape(osp.basename(out_dir)) +
                      r'\.(tmp|old)-(\d+)-[0-9a-f]+$')


def dead_siblings(out_dir: str) -> Dict[str, List[str]]:
    """``.tmp-``/``.old-`` siblings of ``out_dir`` left by runs that are no
    longer alive, by kind."""
    parent = osp.dirname(out_dir)
    pattern = _sibling_pattern(out_dir)
    found: Dict[str, List[str]] = dict(tmp=[], old=[])
    if not osp.isdir(parent):
        return found
    for name in sorted(os.listdir(parent)):
        m = pattern.match(name)
        path = osp.join(parent, name)
        if m and osp.isdir(path) and not osp.islink(path) and not pid_alive(
                int(m.group(2))):
            found[m.group(1)].append(path)
    return found


def find_interrupted_conversion(out_dir: str) -> Optional[str]:
    """The earlier conversion a killed fallback swap left aside, if
    ``out_dir`` is missing because of it (else None)."""
    out_dir = osp.realpath(out_dir)
    if osp.lexists(out_dir):
        return None
    # only the swap makes ``.old-`` folders, each from ``out_dir`` itself
    # (possibly an older converter's output, without the marker)
    aside = dead_siblings(out_dir)['old']
    return max(aside, key=osp.getmtime) if aside else None
