# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""File output shared by every writer of the project: atomic and strict.

* :func:`atomic_write_bytes` / :func:`atomic_write_text` write to a
  temporary file in the destination folder and ``os.replace`` it into place,
  so a reader (or a crash) never sees a half-written file. The file gets
  the mode any ``open()`` would give it, ``0666 & ~umask`` (``mkstemp``
  alone would leave it ``0600``, unreadable to a colleague); folders are
  created ``0777 & ~umask``. This is the one place a temporary file is
  made (:func:`current_umask` reads the umask for it).
* :func:`to_jsonable` / :func:`dumps_json` / :func:`write_json` produce
  *strict* JSON: numpy values become plain numbers, and NaN / +-inf become
  ``null`` (the bare ``NaN`` that Python's ``json`` writes by default is not
  JSON, and most readers reject it). ``allow_nan=False`` is always passed,
  so a non-finite value that slipped through is an error, never a file.
* :func:`write_npz` writes named arrays as an ``.npz`` that loads without
  pickle (numbers, bools, unicode strings); :func:`read_npz` reads one
  back, with an error naming the file.
* :func:`csv_text` is the one CSV layout of the tables the tools write: a
  header row, ``\\n`` line ends, missing values (None) as empty cells.
"""
import csv
import io
import json
import math
import os
import os.path as osp
import tempfile
import threading
import zipfile
from typing import Any, Dict, Iterable, Mapping, Sequence

import numpy as np

from .errors import InputError

__all__ = [
    'current_umask', 'atomic_write_bytes', 'atomic_write_text', 'csv_text', 'to_jsonable',
    'dumps_json', 'read_npz', 'write_json', 'write_npz'
]


#: ``os.umask`` can only be read by setting it: the read and the restore
#: happen under this lock, so two threads never see each other's value.
_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's file-mode creation mask, left as it was.

    Returns:
        int: e.g. ``0o022``.
    """
    with _UMASK_LOCK:
        mask = os.umask(0o077)  # the most restrictive while it is read
        os.umask(mask)
    return mask


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically (folders are created).

    The file's mode is ``0666 & ~umask``, as ``open()`` would make it.

    Args:
        path (str): Destination file.
        data (bytes): The whole content.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix='.tmp_', suffix=osp.splitext(path)[1], dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            if hasattr(os, 'fchmod'):  # POSIX; elsewhere mkstemp's mode
                os.fchmod(f.fileno(), 0o666 & ~current_umask())
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(path: str, text: str) -> None:
    """Writes UTF-8 ``text`` to ``path`` atomically (no newline changes)."""
    atomic_write_bytes(path, text.encode('utf-8'))


def to_jsonable(obj: Any) -> Any:
    """Converts ``obj`` to plain JSON types.

    Dicts (keys become strings), lists, tuples, numpy arrays and scalars,
    torch tensors are converted recursively; non-finite floats become None.
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, np.integer, np.floating)):
        return to_jsonable(obj.item())
    if type(obj).__module__ == 'torch' and hasattr(obj, 'tolist'):
        return to_jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def dumps_json(obj: Any, indent: int = 1) -> str:
    """Strict JSON text of ``obj`` (see :func:`to_jsonable`)."""
    return json.dumps(to_jsonable(obj), indent=indent, allow_nan=False)


def write_json(path: str, obj: Any, indent: int = 1) -> None:
    """Writes ``obj`` as strict JSON to ``path``, atomically."""
    atomic_write_text(path, dumps_json(obj, indent=indent) + '\n')


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """CSV text of a table: ``header``, then one line per row.

    Lines end in ``\\n`` on every platform; a None cell is written as an
    empty cell (a missing value), every other cell as ``str`` does.

    Args:
        header (Sequence[str]): The column names.
        rows (Iterable[Sequence]): The rows, each as long as ``header``.

    Returns:
        str: The whole file's text (write it with :func:`atomic_write_text`).
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    writer.writerow(header)
    writer.writerows(['' if v is None else v for v in row] for row in rows)
    return buf.getvalue()


def write_npz(path: str, arrays: Mapping[str, Any]) -> None:
    """Writes ``arrays`` as an uncompressed ``.npz`` to ``path``, atomically.

    Every value must convert to a numpy array of numbers, bools or unicode
    strings (dtype kind ``'U'``), so the file loads with
    ``np.load(path)`` (``allow_pickle=False``).

    Args:
        path (str): Destination file (``.npz``).
        arrays (Mapping[str, array-like]): Name -> array.
    """
    out = {}
    for name, value in arrays.items():
        array = np.asarray(value)
        if array.dtype.kind not in 'biufcU':
            raise ValueError(f'write_npz({path}): array "{name}" has dtype '
                             f'{array.dtype}; only numbers, bools and '
                             'unicode strings load without pickle')
        out[name] = array
    buf = io.BytesIO()
    np.savez(buf, **out)
    atomic_write_bytes(path, buf.getvalue())


def read_npz(path: str, required: Sequence[str] = ()) -> Dict[str, Any]:
    """The arrays of an ``.npz`` written by :func:`write_npz`, loaded
    without pickle.

    Args:
        path (str): The file.
        required (Sequence[str]): Names that must be present.

    Returns:
        dict: name -> np.ndarray.

    Raises:
        InputError: The file is missing, is not an ``.npz`` of plain arrays,
            or lacks a required array (named with the file).
    """
    if not osp.isfile(path):
        raise InputError(f'{path} does not exist')
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise InputError(f'{path} is not a readable .npz of plain arrays '
                         f'({e})') from e
    missing = [k for k in required if k not in arrays]
    if missing:
        raise InputError(f'{path} lacks the array(s) {missing}')
    return arrays
