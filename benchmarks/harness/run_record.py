"""What every recorded benchmark run says about itself, and how it is
written: the command that reproduces it, the machine, the date, then the
JSON (to a file when asked, and to stdout)."""
import datetime
import shlex


def run_record(script, argv, device='cpu'):
    """``command`` (``python benchmarks/<script> ARGS``), ``machine`` and
    ``date`` (UTC, seconds) of a run, for the head of its JSON."""
    from harness.machine import machine_info
    return dict(
        command=f'python benchmarks/{script} ' + ' '.join(
            shlex.quote(a) for a in argv),
        machine=machine_info(device),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec='seconds'))


def emit(result, json_path=None):
    """Writes ``result`` to ``json_path`` (atomically, strict JSON) when
    given, and prints it."""
    from mmchh.utils.io import dumps_json, write_json
    if json_path:
        write_json(json_path, result, indent=2)
    print(dumps_json(result, indent=2))


def run_main(parse_args, run, argv=None):
    """A recording script's ``main``: parse ``argv`` (default the command
    line), ``run(args, argv)`` (a dict), add the ``seconds`` it took, then
    :func:`emit` the result to ``args.json``."""
    import sys
    import time
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    start = time.time()
    result = run(args, argv)
    result['seconds'] = round(time.time() - start, 1)
    emit(result, args.json)
