# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""An output folder replaced as a whole, atomically (any converter).

1. The whole conversion is written to a sibling folder
   ``OUT_DIR.tmp-<pid>-<random>`` (same filesystem, :func:`make_sibling_tmp`),
   every file synced (:func:`write_synced`).
2. The caller checks it and writes its marker file last; then
   :func:`swap_in` puts it in place: on Linux with
   ``renameat2(RENAME_EXCHANGE)`` (one atomic step: ``OUT_DIR`` holds the
   old conversion, then the new one, never a mix), after which the old one
   (now at the temporary name) is removed. Where the exchange is
   unavailable, the old folder is renamed aside to
   ``OUT_DIR.old-<pid>-<random>``, the new one renamed in, and the old one
   removed; a run killed between the two renames leaves no ``OUT_DIR``,
   and :func:`recover_output_folder` (the next run) finds the old one aside
   and puts it back.

A conversion only ever replaces its own earlier, completed output: a
folder whose marker names the same converter (:func:`check_replaceable`). The testing hooks ``KILL_AT_ENV`` (SIGKILL at
a named step, :func:`kill_point`) and ``NO_EXCHANGE_ENV`` (no
``RENAME_EXCHANGE``, to exercise the fallback) serve the tests'
kill-at-every-step checks.
"""
import ctypes
import errno
import json
import os
import os.path as osp
import secrets
import shutil
import signal
import sys
import warnings
from typing import Callable, Collection, List, Optional, Sequence

from ..conversion_folder import dead_siblings, find_interrupted_conversion
from .errors import ConversionError

__all__ = [
    'KILL_AT_ENV', 'NO_EXCHANGE_ENV', 'check_replaceable',
    'find_interrupted_conversion', 'recover_output_folder', 'kill_point',
    'fsync_dir', 'write_synced', 'make_sibling_tmp', 'swap_in',
    'prepare_output', 'build_aside_and_swap'
]

#: Testing hooks (used by the tests' kill-at-every-step checks): the
#: process SIGKILLs itself at the named step (see :func:`kill_point`), and
#: the ``RENAME_EXCHANGE`` swap can be turned off to exercise the fallback.
KILL_AT_ENV = 'MMCHH_CONVERT_KILL_AT'
NO_EXCHANGE_ENV = 'MMCHH_CONVERT_NO_EXCHANGE'


def _is_inside(path: str, folder: str) -> bool:
    path, folder = osp.realpath(path), osp.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _marker_tool(path: str) -> Optional[str]:
    """The ``tool`` a conversion marker names; None when ``path`` is not a
    regular file holding a JSON object with a string ``tool``."""
    if osp.islink(path) or not osp.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as f:
            content = json.load(f)
    except (OSError, ValueError):  # unreadable, not UTF-8, not JSON
        return None
    tool = content.get('tool') if isinstance(content, dict) else None
    return tool if isinstance(tool, str) else None


def check_replaceable(out_dir: str, root: Optional[str], marker: str,
                      own_files: Collection[str],
                      image_extensions: Sequence[str], tool: str) -> None:
    """Refuses an output folder a conversion must not replace.

    ``out_dir`` may be missing, empty, or a completed conversion by
    ``tool``: a folder holding ``marker`` whose ``tool`` field is ``tool``
    and nothing but what such a conversion writes (``own_files``,
    ``images/`` of image files, ``*.tmp-*`` files of an older converter).
    A folder without the marker is never replaced, whatever else it holds
    (split-named JSONs and ``images/`` alone prove nothing).

    Args:
        out_dir (str): The output folder.
        root (str, optional): The input, which ``out_dir`` must not contain.
        marker (str): The file written last into every conversion.
        own_files (Collection[str]): The other files a conversion writes
            (its split JSONs).
        image_extensions (Sequence[str]): Extensions (lower case) of the
            files a conversion writes to ``images/``.
        tool (str): The converter: the marker's ``tool`` field must name
            it; named in the messages.

    Raises:
        ConversionError: naming the folder and what makes it foreign.
    """
    if not osp.lexists(out_dir):
        return
    if not osp.isdir(out_dir):
        raise ConversionError(f'{out_dir}: output path exists and is not a '
                              'folder')
    if root is not None and _is_inside(root, out_dir):
        raise ConversionError(
            f'{out_dir}: output folder contains the input release {root}; '
            'replacing it would delete the input. Choose another output '
            'folder')
    entries = sorted(os.listdir(out_dir))
    if not entries:
        return
    written_by = _marker_tool(osp.join(out_dir, marker))
    if written_by is None:
        raise ConversionError(
            f'{out_dir}: output folder is not empty and does not hold a '
            f'conversion (no readable {marker} of {tool}; it holds '
            f'{entries[0]!r}{" and more" if len(entries) > 1 else ""}); '
            'refusing to replace it. Choose an empty or new folder')
    if written_by != tool:
        raise ConversionError(
            f'{out_dir}: the conversion there was written by {written_by} '
            f'(its {marker} says so), not by {tool}; refusing to replace '
            'it. Choose an empty or new folder')
    ours = set(own_files) | {marker}
    for e in entries:
        path = osp.join(out_dir, e)
        if (e in ours or '.tmp-' in e) and osp.isfile(path):
            continue
        if e == 'images' and osp.isdir(path) and not osp.islink(path):
            foreign = [n for n in sorted(os.listdir(path))
                       if not osp.isfile(osp.join(path, n))
                       or osp.islink(osp.join(path, n))
                       or not (osp.splitext(n)[1].lower() in image_extensions
                               or '.tmp-' in n)]
            if not foreign:
                continue
            path = osp.join(path, foreign[0])
        raise ConversionError(
            f'{out_dir}: the earlier conversion there also holds {path}, '
            f'which {tool} does not write; refusing to replace '
            '(and delete) it. Move it away or choose another output folder')


def recover_output_folder(out_dir: str) -> List[str]:
    """Repairs what a killed conversion into ``out_dir`` left behind.

    Puts back the earlier conversion a killed fallback swap left aside (when
    ``out_dir`` is missing), then removes the ``.tmp-``/``.old-`` siblings
    of runs no longer alive.

    Returns:
        list: what was done, one line each (for the log).
    """
    out_dir = osp.realpath(out_dir)
    done = []
    aside = find_interrupted_conversion(out_dir)
    if aside is not None:
        os.rename(aside, out_dir)
        done.append(f'restored the earlier conversion {aside} -> {out_dir} '
                    '(an interrupted run had moved it aside)')
    for kind, paths in dead_siblings(out_dir).items():
        for path in paths:
            shutil.rmtree(path)
            done.append(f'removed {path} (left by an interrupted run)')
    return done


def kill_point(step: str) -> None:
    """Testing hook: SIGKILL this process at ``step`` when asked (see
    ``KILL_AT_ENV``); nothing otherwise."""
    if os.environ.get(KILL_AT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def fsync_dir(path: str) -> None:
    """Syncs a folder's entries to disk (where the filesystem can)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # not supported on this filesystem
    finally:
        os.close(fd)


def write_synced(path: str, data: bytes) -> None:
    """Writes a file of the temporary conversion and syncs it to disk (the
    whole folder is swapped in at once, so no per-file rename is needed)."""
    with open(path, 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def make_sibling_tmp(target: str) -> str:
    """Creates (with missing parents) and returns the empty folder
    ``TARGET.tmp-<pid>-<random>`` the new conversion is built in.

    Raises:
        OSError: when it cannot be created.
    """
    os.makedirs(osp.dirname(target), exist_ok=True)
    tmp = f'{target}.tmp-{os.getpid()}-{secrets.token_hex(4)}'
    os.mkdir(tmp)
    return tmp


def _rename_exchange(a: str, b: str) -> bool:
    """Atomically exchanges two paths (Linux ``renameat2``).

    Returns:
        bool: False when the exchange is unavailable here (no
        ``renameat2``, or the filesystem does not support it).
    """
    if os.environ.get(NO_EXCHANGE_ENV) or not sys.platform.startswith(
            'linux'):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                          ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b),
                 rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP,
               errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), a, None, b)


def swap_in(tmp: str, out_dir: str) -> None:
    """Replaces ``out_dir`` (missing, empty or a conversion) by ``tmp``."""
    parent = osp.dirname(out_dir)
    fsync_dir(tmp)
    if not osp.lexists(out_dir) or (osp.isdir(out_dir)
                                    and not os.listdir(out_dir)):
        os.rename(tmp, out_dir)  # replaces an empty folder atomically
        fsync_dir(parent)
        return
    if _rename_exchange(tmp, out_dir):
        fsync_dir(parent)
        kill_point('exchanged')
        _remove_earlier(tmp)  # now the earlier conversion
        return
    aside = f'{out_dir}.old-{os.getpid()}-{secrets.token_hex(4)}'
    os.rename(out_dir, aside)
    kill_point('aside')
    try:
        os.rename(tmp, out_dir)
    except BaseException:
        os.rename(aside, out_dir)
        raise
    fsync_dir(parent)
    kill_point('swapped')
    _remove_earlier(aside)


def _remove_earlier(path: str) -> None:
    """Removes the replaced conversion; a failure only warns (the new one
    is in place, and the next run removes what is left)."""
    try:
        shutil.rmtree(path)
    except OSError as e:
        warnings.warn(f'could not remove the replaced conversion at {path} '
                      f'({e}); the next conversion into the same folder '
                      'removes it')


def prepare_output(out_dir: str, target: str, root: Optional[str],
                   marker: str, own_files: Collection[str],
                   image_extensions: Sequence[str], tool: str) -> None:
    """Repairs what killed runs left at ``target`` (the real path of
    ``out_dir``), then refuses it unless it is ours to replace (see
    :func:`check_replaceable` for the other arguments).

    Raises:
        ConversionError: naming ``out_dir``.
    """
    if osp.isdir(osp.dirname(target)):
        try:
            for line in recover_output_folder(target):
                warnings.warn(f'{out_dir}: {line}')
        except OSError as e:
            raise ConversionError(f'{out_dir}: cannot repair what an '
                                  f'interrupted conversion left ({e})') from e
    check_replaceable(target, root, marker, own_files, image_extensions, tool)


def build_aside_and_swap(out_dir: str, target: str,
                         write: Callable[[str], None],
                         still_replaceable: Callable[[], None]) -> None:
    """Builds a conversion beside ``target`` and swaps it in.

    Args:
        out_dir (str): The output folder as the user named it (messages).
        target (str): Its real path (a symlinked folder: its target).
        write (callable): Writes the whole conversion into the folder it
            is given, checks it and writes the marker last.
        still_replaceable (callable): Raises when ``target`` is no longer
            ours to replace (checked again just before the swap).

    Raises:
        ConversionError: the folder cannot be written (an ``OSError``, e.g.
            disk full): ``out_dir`` is unchanged. Whatever ``write`` raises
            passes through, after the half-built folder is removed.
    """
    try:
        tmp = make_sibling_tmp(target)
    except OSError as e:
        raise ConversionError(f'{out_dir}: cannot write the output folder '
                              f'({e})') from e
    try:
        write(tmp)
        still_replaceable()
        swap_in(tmp, target)
    except BaseException as e:
        if osp.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):  # e.g. disk full: the user's to fix
            raise ConversionError(
                f'{out_dir}: writing the conversion failed ({e}); the '
                'folder is unchanged') from e
        raise
