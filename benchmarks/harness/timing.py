"""Timing that other processes' load hits alike on every side compared.

:func:`time_call` is the one way a call is timed (the device synchronised
before and after); :func:`interleaved` alternates the sides' order on each
repetition (A B, B A, ...), so that a slow spell of the machine lands on
both sides, and :func:`with_medians` is how the benchmarks record it.
"""
import statistics
import sys
import time


def log(msg):
    """A progress line on stderr (the results table goes to stdout)."""
    print(f'[bench {time.strftime("%H:%M:%S")}] {msg}', file=sys.stderr,
          flush=True)


def sync(device):
    """Waits for the device's queued work (a no-op on the CPU)."""
    import torch
    if device == 'cuda':
        torch.cuda.synchronize()


def time_call(fn, device):
    """Seconds ``fn()`` takes, its device work included."""
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def interleaved(fns, reps, warmup, device):
    """Times each callable ``warmup + reps`` times, alternating the order
    (A B, B A, ...); returns {name: [seconds after warm-up]}."""
    names = list(fns)
    times = {k: [] for k in names}
    for i in range(warmup + reps):
        for k in (names if i % 2 == 0 else names[::-1]):
            seconds = time_call(fns[k], device)
            if i >= warmup:
                times[k].append(seconds)
    return times


def with_medians(times):
    """{name: seconds} -> {name: dict(median_s=..., all_s=seconds)}."""
    return {k: dict(median_s=statistics.median(v), all_s=v)
            for k, v in times.items()}


def paired_ratio(times, num, den):
    """The per-pair ratios ``num / den`` of :func:`interleaved`'s times
    (repetition i of each side: adjacent in time, so a slow spell of the
    machine hits both), with their median and range.

    Returns:
        dict: ``median``, ``min``, ``max``, ``pairs`` (how many) and
        ``all`` (every ratio, in repetition order).
    """
    ratios = [a / b for a, b in zip(times[num], times[den])]
    if not ratios:
        raise ValueError(f'no repetitions of {num} and {den} to pair')
    return dict(median=statistics.median(ratios), min=min(ratios),
                max=max(ratios), pairs=len(ratios), all=ratios)
