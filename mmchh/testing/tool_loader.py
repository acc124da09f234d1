# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The command-line tools of a source checkout, loaded as modules.

``tools/*.py`` are scripts, not a package: tests that call a tool's
``main(argv)`` or ``parse_args`` in-process load it with
:func:`load_tool`; the docs' tests read a script's ``--help`` with
:func:`tool_help`.

Why this reads back into ``tools/`` rather than the tools' parsers moving
into the package: what is tested is the command a user runs (almost every
caller runs a script's ``main``: its options, its one-line errors, its exit
status, its output files), so the script itself must be executed; a parser
built by a package function would still leave ``main`` in the script.
Nothing in the package imports this module except ``testing``'s own
``__init__``; ``testing`` is the top room, free to import everything.
"""
import contextlib
import importlib.util
import io
import os.path as osp
import runpy
import subprocess
import sys
from types import ModuleType
from typing import Dict, Sequence

__all__ = ['TOOLS_DIR', 'load_tool', 'run_tool_in_process', 'tool_help']

#: ``tools/`` of the checkout this package is imported from.
TOOLS_DIR = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools')


def load_tool(name: str) -> ModuleType:
    """Runs ``tools/<name>.py`` as a fresh module and returns it.

    Every call executes the file again (a new module, not cached in
    ``sys.modules``), so a test never sees another test's changes to a
    tool's globals. The script's ``if __name__ == '__main__'`` block does
    not run.

    Args:
        name (str): The tool's path under ``tools/`` without ``.py``, e.g.
            ``'infer'`` or ``'dataset_converters/convert_isbi'``.

    Returns:
        module: The tool, named ``mmchh_tools_<name>``.

    Raises:
        FileNotFoundError: If there is no such tool (e.g. mmchh is installed
            without its source checkout).
    """
    path = osp.join(TOOLS_DIR, f'{name}.py')
    if not osp.isfile(path):
        raise FileNotFoundError(f'no tool {path}')
    module_name = 'mmchh_tools_' + name.replace('/', '_')
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool_in_process(name: str,
                        argv: Sequence[str]) -> subprocess.CompletedProcess:
    """Runs ``tools/<name>.py``'s ``main(argv)`` in this process, as its
    command line would, with stdout and stderr captured.

    What a subprocess gives minus the interpreter start (torch, MMPose and
    mmchh imports: about 8 s on 2 cores), for tests of a tool's behaviour;
    tests of process-level behaviour (exit status of the real script, one
    line on stderr) still start one.

    Args:
        name (str): The tool, as for :func:`load_tool`.
        argv (Sequence[str]): Its arguments (without the script name).

    Returns:
        subprocess.CompletedProcess: ``returncode`` (``main``'s status; 1
        with the message on ``stderr`` when it exits through
        ``SystemExit`` with a message, as the interpreter would print it),
        ``stdout`` and ``stderr`` as text.
    """
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = load_tool(name).main(list(argv))
        except SystemExit as e:
            code = e.code
            if code is not None and not isinstance(code, int):
                print(code, file=err)
                code = 1
    return subprocess.CompletedProcess([name, *argv], code or 0,
                                       out.getvalue(), err.getvalue())


#: The ``--help`` texts read so far, by script.
_HELP: Dict[str, str] = {}


def tool_help(script: str) -> str:
    """The ``--help`` output of a script of the checkout, run in this
    process as its command line would (the docs' tests check every
    documented flag against it; cached: a script's help does not change
    within a session).

    Args:
        script (str): Its path under the checkout, e.g.
            ``'tools/train.py'`` or ``'benchmarks/run.py'``.

    Returns:
        str: What ``--help`` printed.

    Raises:
        AssertionError: If ``--help`` did not exit.
    """
    if script not in _HELP:
        path = osp.join(osp.dirname(TOOLS_DIR), script)
        out = io.StringIO()
        argv = sys.argv
        sys.argv = [path, '--help']
        try:
            with contextlib.redirect_stdout(out):
                runpy.run_path(path, run_name='__main__')
        except SystemExit:
            pass
        else:
            raise AssertionError(f'{script} --help did not exit')
        finally:
            sys.argv = argv
        _HELP[script] = out.getvalue()
    return _HELP[script]
