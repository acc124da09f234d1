# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""What every command-line tool does with a user's mistake: one line.

An :class:`~mmchh.utils.errors.InputError` (a bad file, field or option)
and a missing file end the tool with ``tool.py: error: <message>`` on
stderr and exit status 1 -- no traceback, which would bury the one line
that matters. Every other exception is a bug and keeps its traceback.

The option types (:func:`number_type` and its named instances,
:func:`torch_device`) check a number or a device where argparse reads it,
and :class:`ArgumentParser` prints argparse's errors as one line (exit
status 2), so a bad option stops a tool before any work.

The options several tools share are declared here once
(:func:`add_allow_config_mismatch`, :func:`add_runner_options`,
:func:`size_pair`), so they read and print alike in every tool; and
:func:`option_values` / :func:`spacing_value` hand the parsed options to
the library. :func:`print_written` is every tool's last line: what it
wrote and where (:func:`runner_written`: what a runner wrote).
"""
import argparse
import math
import re
import sys
from typing import Callable, NoReturn, Optional, Sequence, Tuple, Union

from .errors import InputError

__all__ = [
    'ArgumentParser', 'USER_ERRORS', 'add_allow_config_mismatch',
    'add_runner_options', 'any_float', 'any_int', 'fail',
    'finite_positive_float', 'fraction', 'non_negative_float',
    'non_negative_int', 'number_type', 'one_line', 'open_fraction',
    'option_values', 'positive_int', 'print_written', 'run_tool',
    'runner_written', 'size_pair', 'spacing_value', 'torch_device'
]

#: Exceptions that are the user's to fix: printed as one line.
USER_ERRORS = (InputError, FileNotFoundError)


def one_line(error) -> str:
    """The message of ``error`` (or a string) on one line."""
    text = str(error)
    if isinstance(error, FileNotFoundError) and error.filename and \
            error.strerror:
        text = f'{error.filename}: {error.strerror}'
    return ' '.join(text.split()) or type(error).__name__


def fail(tool: str, error) -> NoReturn:
    """Exits with status 1 after printing ``tool: error: <message>``.

    Args:
        tool (str): The tool's file name, e.g. ``'infer.py'``.
        error (Exception | str): What went wrong.
    """
    sys.exit(f'{tool}: error: {one_line(error)}')


def run_tool(tool: str, main: Callable[[Optional[Sequence[str]]], object],
             argv: Optional[Sequence[str]] = None):
    """Runs ``main(argv)``; user errors end in :func:`fail`.

    Returns:
        What ``main`` returns (the exit status, or None for 0); 130 after
        the line ``tool: interrupted`` on Ctrl-C.

    Raises:
        SystemExit: status 1 with the one-line message for
            :data:`USER_ERRORS` (``SystemExit.code`` holds the message).
    """
    try:
        return main(argv)
    except USER_ERRORS as e:
        fail(tool, e)
    except KeyboardInterrupt:  # Ctrl-C: one line, the shell's status 130
        print(f'{tool}: interrupted', file=sys.stderr)
        return 130


# -- option types: a bad number is one argparse line, before any work ------

#: A decimal number as a person types it: no ``1_5``, ``0x1``, ``inf``,
#: ``nan`` (Python's ``float``/``int`` accept some of these).
_DECIMAL = re.compile(r'[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?')
_INTEGER = re.compile(r'[+-]?\d+')


def _interval_text(low, high, low_open, high_open) -> str:
    if low is None and high is None:
        return ''
    if high is None:
        return f'{">" if low_open else ">="} {low}'
    if low is None:
        return f'{"<" if high_open else "<="} {high}'
    return (f'in {"(" if low_open else "["}{low}, {high}'
            f'{")" if high_open else "]"}')


def number_type(kind: type = float,
                low: Optional[float] = None,
                high: Optional[float] = None,
                low_open: bool = False,
                high_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type=`` that reads a finite decimal number in a range.

    argparse turns the :class:`argparse.ArgumentTypeError` into one line
    naming the option (``tool.py: error: argument --level: must be in
    (0, 1); got 1.5``) and exit status 2, before the tool does any work.

    Args:
        kind (type): ``int`` or ``float``.
        low, high (float, optional): The bounds; None for none.
        low_open, high_open (bool): Whether a bound itself is excluded.

    Returns:
        callable: ``str -> kind``, raising ``ArgumentTypeError`` for a
        spelling other than a plain decimal (``1_5``, ``0x1``, ``nan``,
        ``inf``) or a value outside the range.
    """
    allowed = _interval_text(low, high, low_open, high_open)
    word = 'an integer' if kind is int else 'a finite number'

    def parse(text: str):
        pattern = _INTEGER if kind is int else _DECIMAL
        value = kind(text) if pattern.fullmatch(text.strip()) else None
        if value is None or not math.isfinite(value):
            raise argparse.ArgumentTypeError(
                f'must be {word} {allowed}'.rstrip() + f'; got {text!r}')
        if (low is not None and (value < low or low_open and value == low)) \
                or (high is not None and (value > high or high_open and
                                          value == high)):
            raise argparse.ArgumentTypeError(
                f'must be {allowed}; got {text}')
        return value

    parse.__name__ = f'{kind.__name__} {allowed}'.rstrip()
    return parse


#: ``type=`` for counts: an integer >= 1.
positive_int = number_type(int, low=1)
#: ``type=`` for seeds and indices: an integer >= 0.
non_negative_int = number_type(int, low=0)
#: ``type=`` for any integer (e.g. a rank), spelled as a plain decimal.
any_int = number_type(int)
#: ``type=`` for any finite number spelled as a plain decimal (the range
#: checked by the library that reads it).
any_float = number_type(float)
#: ``type=`` for radii, scales, durations: a finite number > 0.
finite_positive_float = number_type(float, low=0, low_open=True)
#: ``type=`` for a std or weight that may be 0: a finite number >= 0.
non_negative_float = number_type(float, low=0)
#: ``type=`` for a coverage or confidence level: in (0, 1).
open_fraction = number_type(float, 0, 1, low_open=True, high_open=True)
#: ``type=`` for a rate that may be reached, e.g. a TPR: in (0, 1].
fraction = number_type(float, 0, 1, low_open=True)


def torch_device(text: str) -> str:
    """An argparse ``type=`` for ``--device``: a torch device this machine
    has (``cpu``, ``cuda``, ``cuda:1`` with that many GPUs, ``mps`` on a
    Mac with Metal...), else one argparse line naming it.

    Returns:
        str: ``text`` unchanged.
    """
    import torch
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError) as e:
        raise argparse.ArgumentTypeError(
            f'{text} is not a torch device (e.g. cpu, cuda, cuda:0)') from e
    if device.type == 'cpu':
        return text
    if device.type == 'cuda':
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if device.index is None and count or \
                device.index is not None and device.index < count:
            return text
        raise argparse.ArgumentTypeError(
            f'{text} is not available on this machine ({count} CUDA '
            'device(s)); use cpu')
    backend = getattr(torch.backends, device.type, None) or getattr(
        torch, device.type, None)
    available = getattr(backend, 'is_available', None)
    if available is not None and available():
        return text
    raise argparse.ArgumentTypeError(
        f'{text}: device type {device.type!r} is not available on this '
        'machine; use cpu')


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose errors are one line: ``tool.py: error:
    argument --level: must be in (0, 1); got 1.5 (see --help)``, exit
    status 2, without the usage block above it."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f'{self.prog}: error: {one_line(message)} '
                  '(see --help)\n')


def add_allow_config_mismatch(parser: argparse.ArgumentParser) -> None:
    """Adds ``--allow-config-mismatch`` (the same flag in every tool that
    loads a checkpoint with a config)."""
    parser.add_argument(
        '--allow-config-mismatch', action='store_true',
        help='use the config even where its input/heatmap size, landmark '
        'count or names differ from those the checkpoint was trained with '
        '(refused by default; a warning names both)')


#: What an overlay may show (``mmchh.visualization.overlay.OVERLAY_SHOWS``,
#: repeated here as utils sits below visualization; a test holds them
#: equal).
OVERLAY_SHOWS = ('all', 'flagged', 'regions', 'points')


def add_overlay_show_option(parser: argparse.ArgumentParser,
                            *flags: str) -> None:
    """Adds the option choosing what overlays draw (``--show`` in
    tools/infer.py; ``--draw`` in tools/test.py, whose ``--show`` is
    MMPose's window), ``dest='overlay_show'``."""
    parser.add_argument(
        *(flags or ('--show', )), dest='overlay_show', choices=OVERLAY_SHOWS,
        default='all',
        help='what each overlay draws: all (default: every landmark with '
        'its conformal region outline, probability contours, cross and '
        'label), flagged (only the flagged landmarks), regions (region '
        'outlines, crosses and labels, no contours), points (crosses and '
        'labels only)')


def add_amp_option(parser: argparse.ArgumentParser) -> None:
    """Adds ``--amp`` (mixed precision, the same flag in every tool that
    runs the network)."""
    parser.add_argument(
        '--amp', action='store_true',
        help='mixed precision: the network under bf16 autocast on a CPU '
        '(fast where it has amx_bf16/avx512_bf16), fp16 on CUDA; softmax, '
        'NLL, ERE, calibration and metrics stay float32')


def add_runner_options(
        parser: argparse.ArgumentParser,
        cfg_options_help: str = 'override settings in the config, '
        'key=value',
        launcher_help: Optional[str] = None) -> None:
    """Adds the options of every tool that runs MMEngine's Runner:
    ``--cfg-options``, ``--launcher`` and ``--local_rank`` (the last two
    as ``torch.distributed`` launchers and MMPose's tools spell them).

    Args:
        parser (ArgumentParser): The tool's parser.
        cfg_options_help (str): ``--cfg-options``' help (a tool may add
            an example).
        launcher_help (str, optional): ``--launcher``' help; None: none.
    """
    from .run_config import CfgOptionsAction
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help=cfg_options_help)
    parser.add_argument('--launcher',
                        choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help=launcher_help)
    parser.add_argument('--local_rank', '--local-rank', type=any_int,
                        default=0)


def size_pair(kind: Callable[[str], int] = any_int) -> dict:
    """``add_argument`` keywords of a width-height option (``W H``).

    Args:
        kind (callable): The type of each of the two numbers, e.g.
            :data:`positive_int`.

    Returns:
        dict: ``type``, ``nargs`` and ``metavar``; add ``help`` and any
        ``default``.
    """
    return dict(type=kind, nargs=2, metavar=('W', 'H'))


def option_values(args: argparse.Namespace, *names: str) -> dict:
    """The options ``names`` of ``args`` as keyword arguments, for the
    library function whose parameters carry the options' names."""
    return {name: getattr(args, name) for name in names}


def spacing_value(
    values: Optional[Sequence[float]]
) -> Optional[Union[float, Tuple[float, ...]]]:
    """A ``--spacing MM [MM]`` as the library takes it: None when not
    given, one value as a number, x and y as a tuple."""
    if values is None:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def print_written(tool: str,
                  items: Sequence[Tuple[str, Optional[str]]],
                  since: Optional[float] = None) -> list:
    """Prints a tool's last line: what it wrote, where, in the order to
    open them (``train.py: wrote calibrated checkpoint w/calibrated.pth;
    metrics w/20261207_045727/vis_data/20261207_045727.json``).

    Args:
        tool (str): The tool's name (``'train.py'``).
        items (list[tuple[str, str | None]]): ``(what, path)`` pairs. A
            None path, one that does not exist, or (with ``since``) one
            not modified since then is left out: the line names only what
            this run wrote.
        since (float, optional): The run's start (``time.time()``).

    Returns:
        list[str]: The paths named.
    """
    import os.path as osp
    named = [(what, path) for what, path in items
             if path and osp.exists(path) and
             (since is None or osp.getmtime(path) >= since - 1)]
    if named:
        print(f'{tool}: wrote ' + '; '.join(f'{what} {path}'
                                            for what, path in named))
    else:
        print(f'{tool}: wrote no file')
    return [path for _, path in named]


def runner_written(runner) -> list:
    """What an MMEngine runner may have written, as :func:`print_written`
    items: the calibrated checkpoint and calibration report
    (``TemperatureScalingHook``), the best and the last checkpoint, the
    test metrics (``<timestamp>.json``) and the validation log
    (``vis_data/<timestamp>.json``)."""
    import os.path as osp
    work, log_dir = runner.work_dir, runner.log_dir
    last = None
    pointer = osp.join(work, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer, encoding='utf-8') as f:
            last = f.read().strip() or None
    best = None
    for hook in runner.hooks:
        paths = getattr(hook, 'best_ckpt_path_dict', None) or {}
        best = best or next(iter(paths.values()), None) or getattr(
            hook, 'best_ckpt_path', None)
    stamp = f'{runner.timestamp}.json'
    return [('calibrated checkpoint', osp.join(work, 'calibrated.pth')),
            ('calibration report', osp.join(work, 'calibration.json')),
            ('best checkpoint', best), ('last checkpoint', last),
            ('test metrics', osp.join(log_dir, stamp)),
            ('validation log', osp.join(log_dir, 'vis_data', stamp))]
