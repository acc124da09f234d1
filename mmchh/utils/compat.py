# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Run-time fixes for the pinned MMPose stack, applied once by ``import mmchh``.

1. ``mmcv.ops`` placeholder: with ``mmcv-lite`` (no compiled ops; PyPI has
   no full-mmcv wheels for our torch) ``import mmpose.models`` fails because
   a few heads import ``mmcv.ops`` at module level. When ``mmcv.ops`` cannot
   be imported, we register a placeholder module whose every attribute is a
   class that raises :class:`MissingMMCVOpsError` when instantiated or
   called. Nothing that does not use a compiled op is affected; with a full
   mmcv nothing changes. The placeholder lives in the top-level module
   :mod:`mmchh_mmcv_ops`, which ``mmchh_mmcv_ops.pth`` also installs at
   interpreter start-up, so ``from mmpose.apis import init_model`` works
   before ``import mmchh``.
2. Safe checkpoint loading: torch >= 2.6 loads with ``weights_only=True``.
   MMEngine checkpoints carry numpy arrays/scalars (dataset metainfo, message
   hub), ``HistoryBuffer`` objects and ``collections`` types. We allow-list
   exactly those with ``torch.serialization.add_safe_globals``; any other
   pickled object (e.g. one whose ``__reduce__`` runs a command) is still
   refused by torch. ``weights_only`` is never turned off.
3. The ``pkg_resources`` notice: MMEngine's ``get_installed_path``
   (``mmengine.utils.package_utils``) imports ``pkg_resources``, which
   setuptools 80 answers with a ``UserWarning`` (deprecated, removed in
   setuptools 81; our requirements pin ``setuptools<81`` for it).
   ``mmpose.apis`` calls it on import, so every tool that builds a runner
   or an inferencer printed it. The notice is about MMEngine's code, not
   ours, and says nothing a user can act on: a filter ignores exactly that
   message from exactly that module (:func:`ignore_pkg_resources_notice`);
   every other warning, MMEngine's included, is shown as before.
"""
import collections
import importlib
import sys
import warnings

from mmchh_mmcv_ops import (MMCV_OPS_HINT, MissingMMCVOpsError,  # noqa: F401
                            MissingOpsModule, is_placeholder)
from mmchh_mmcv_ops import install as install_finder


def mmcv_ops_available() -> bool:
    """True when the real, compiled ``mmcv.ops`` imports."""
    module = sys.modules.get('mmcv.ops')
    if module is not None:
        return not is_placeholder(module)
    try:
        module = importlib.import_module('mmcv.ops')
    except ImportError:
        # a failed package import can leave its already-imported submodules
        for name in [n for n in sys.modules if n.startswith('mmcv.ops.')]:
            del sys.modules[name]
        return False
    return not is_placeholder(module)


def install_mmcv_ops_placeholder() -> bool:
    """Installs the ``mmcv.ops`` placeholder if the real ops are missing.

    The placeholder and its finder live in the top-level module
    :mod:`mmchh_mmcv_ops` (so that ``mmchh_mmcv_ops.pth`` can install them
    at interpreter start-up without importing mmchh); this installs the
    finder if start-up did not, and replaces an ``mmcv.ops`` that failed to
    import.

    Returns:
        bool: True if the placeholder is (now) in place.
    """
    install_finder()
    if mmcv_ops_available():
        return False
    if not is_placeholder(sys.modules.get('mmcv.ops')):
        import mmcv
        placeholder = MissingOpsModule('mmcv.ops')
        sys.modules['mmcv.ops'] = placeholder
        mmcv.ops = placeholder
    return True


def _history_buffer_getattr(obj, name: str):
    """``getattr`` restricted to a ``HistoryBuffer``'s statistics methods.

    MMEngine pickles ``HistoryBuffer``'s statistics methods as functions,
    i.e. ``getattr(HistoryBuffer, 'mean')``. Allowing the real ``builtins.getattr``
    would hand a checkpoint any attribute of any allowed object (for example
    ``ndarray.tofile``); this stand-in serves only that one pattern.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    # the built-in statistics are registered lazily by the first instance,
    # so they may not be in the registry yet when a checkpoint loads
    allowed = {'min', 'max', 'current', 'mean'}
    allowed.update(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and isinstance(name, str) and name in allowed:
        return getattr(obj, name)
    import pickle
    raise pickle.UnpicklingError(
        f'checkpoint asks for getattr({obj!r:.80}, {name!r:.80}); '
        'mmchh only allows HistoryBuffer statistics methods')


def _bytes_from_data(*args):
    """``bytes`` restricted to copying data (numpy pickles call ``bytes()``).

    The real ``bytes(n)`` would let a checkpoint allocate n bytes at will.
    """
    if len(args) == 0 or (len(args) == 2 and isinstance(args[0], str)
                          and isinstance(args[1], str)) or (
                              len(args) == 1
                              and isinstance(args[0], (bytes, bytearray))):
        return bytes(*args)
    import pickle
    raise pickle.UnpicklingError(
        'checkpoint calls bytes() with arguments mmchh does not allow: '
        f'{tuple(type(a).__name__ for a in args)}')


def checkpoint_safe_globals() -> list:
    """The non-tensor globals that MMEngine/MMPose checkpoints contain.

    Found with ``torch.serialization.get_unsafe_globals_in_checkpoint`` on
    checkpoints written by a real MMEngine ``Runner``: ``meta.dataset_meta``
    holds numpy arrays, ``message_hub`` holds ``HistoryBuffer`` objects (with
    bound methods pickled through ``getattr``) and numpy scalars,
    ``param_schedulers`` hold ``Counter`` milestones. ``getattr`` and
    ``bytes`` are served by restricted stand-ins, never the builtins.
    """
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer
    if int(np.__version__.split('.')[0]) >= 2:
        from numpy._core import multiarray
    else:
        from numpy.core import multiarray
    from numpy import dtypes as np_dtypes
    dtype_classes = [
        getattr(np_dtypes, n) for n in dir(np_dtypes)
        if n.endswith('DType') and isinstance(getattr(np_dtypes, n), type)
    ]
    return [
        multiarray._reconstruct,
        multiarray.scalar,
        np.ndarray,
        np.dtype,
        *dtype_classes,
        collections.Counter,
        collections.defaultdict,
        HistoryBuffer,
        (_history_buffer_getattr, 'builtins.getattr'),
        (_bytes_from_data, 'builtins.bytes'),
    ]


def allow_checkpoint_globals() -> None:
    """Allow-lists :func:`checkpoint_safe_globals` for ``torch.load``."""
    import torch
    torch.serialization.add_safe_globals(checkpoint_safe_globals())


def ignore_pkg_resources_notice() -> None:
    """Ignores setuptools' ``pkg_resources is deprecated`` warning raised
    where MMEngine's ``mmengine.utils.package_utils`` imports it, and
    nothing else (see the module)."""
    warnings.filterwarnings(
        'ignore',
        message=r'pkg_resources is deprecated as an API',
        category=UserWarning,
        module=r'mmengine\.utils\.package_utils')


def apply_compat() -> None:
    """Applies the three fixes; safe to call more than once."""
    install_mmcv_ops_placeholder()
    allow_checkpoint_globals()
    ignore_pkg_resources_notice()
