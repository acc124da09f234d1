# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""A stand-in for ``mmcv.ops`` when mmcv has no compiled ops (mmcv-lite).

``import mmpose.models`` imports heads that do ``from mmcv.ops import ...``
at module level; with ``mmcv-lite`` (PyPI has no full-mmcv wheel for the
pinned torch) that dies with ``No module named 'mmcv._ext'`` -- also in
``from mmpose.apis import init_model``, before any config (and its
``custom_imports = ['mmchh']``) is read. This module serves ``mmcv.ops``
(and its submodules) as placeholders whose every attribute is a class that
raises :class:`MissingMMCVOpsError` when it is instantiated or called, so
everything that does not use a compiled op works.

It is a top-level module, outside the ``mmchh`` package, because it runs at
interpreter start-up: ``mmchh_mmcv_ops.pth`` (installed into site-packages
by ``setup.py``, also by ``pip install -e .``) calls :func:`install`, which
only appends a finder to ``sys.meta_path``. It imports nothing but the
standard library modules Python has already loaded at start-up, so
``python -c pass`` is not measurably slower. ``import mmchh`` calls
:func:`install` too (through ``mmchh.utils.compat``), for interpreters
started without site-packages processing.

Whether the real ops exist is decided when ``mmcv.ops`` is first imported:
if ``mmcv/_ext*`` (the compiled extension) is present, the finder steps
aside and the real ``mmcv.ops`` is imported; with a full mmcv nothing
changes.
"""
import sys
import types
from importlib.machinery import ModuleSpec, PathFinder

__all__ = [
    'MMCV_OPS_HINT', 'MissingMMCVOpsError', 'MissingOpMeta',
    'MissingOpsModule', 'MissingOpsFinder', 'install', 'is_placeholder'
]

MMCV_OPS_HINT = (
    'mmcv is installed without its compiled ops (mmcv-lite, or an mmcv built '
    'without MMCV_WITH_OPS). To get them, build mmcv 2.1.0 from source in '
    'this environment: `pip download --no-deps --no-binary :all: '
    'mmcv==2.1.0`, unpack it, change -std=c++17 to -std=c++20 in its '
    'setup.py, then `MMCV_WITH_OPS=1 MAX_JOBS=2 pip install '
    '--no-build-isolation ./mmcv-2.1.0` (about 12 minutes on 2 cores). '
    'See docs/faq.md.')


class MissingMMCVOpsError(RuntimeError):
    """Raised when a compiled mmcv op is used but mmcv has no compiled ops."""


class MissingOpMeta(type):
    """Metaclass so that calling a placeholder (as a class or a function)
    raises, while importing, subclassing and isinstance checks still work."""

    def __call__(cls, *args, **kwargs):
        raise MissingMMCVOpsError(f'{cls.__qualname__} needs compiled mmcv '
                                  f'ops, which are missing. {MMCV_OPS_HINT}')


class MissingOpsModule(types.ModuleType):
    """Stand-in for ``mmcv.ops`` (or one of its submodules)."""

    def __init__(self, name: str):
        super().__init__(name, 'Placeholder installed by mmchh: compiled mmcv '
                         'ops are missing. ' + MMCV_OPS_HINT)
        self.__path__ = []  # a package, so submodule imports reach the finder
        self.__mmchh_placeholder__ = True

    def __getattr__(self, attr: str):
        if attr.startswith('__'):
            raise AttributeError(attr)
        placeholder = MissingOpMeta(attr, (), {
            '__module__': self.__name__,
            '__qualname__': f'{self.__name__}.{attr}'
        })
        setattr(self, attr, placeholder)
        return placeholder


def is_placeholder(module) -> bool:
    """Whether ``module`` is one of the placeholders served here."""
    return bool(getattr(module, '__mmchh_placeholder__', False))


def _compiled_ops_present() -> bool:
    """Whether mmcv's compiled extension ``mmcv._ext`` can be found."""
    mmcv = sys.modules.get('mmcv')
    path = getattr(mmcv, '__path__', None)
    return path is not None and PathFinder.find_spec('mmcv._ext',
                                                     path) is not None


class MissingOpsFinder:
    """Serves ``mmcv.ops`` and ``mmcv.ops.*`` as placeholders when mmcv has
    no compiled extension; steps aside otherwise (a meta path finder and
    loader; one string comparison for every other import)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == 'mmcv.ops':
            if _compiled_ops_present():
                return None
            return ModuleSpec(fullname, self, is_package=True)
        if fullname.startswith('mmcv.ops.') and is_placeholder(
                sys.modules.get('mmcv.ops')):
            return ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return MissingOpsModule(spec.name)

    def exec_module(self, module):
        pass

    def invalidate_caches(self):
        pass


def install() -> None:
    """Puts :class:`MissingOpsFinder` first on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, MissingOpsFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MissingOpsFinder())
