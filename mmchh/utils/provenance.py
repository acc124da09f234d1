# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""What a recorded number depends on besides the inputs: the CPU it was
measured on and the code that measured it.

The demo (``demo_results.json``) and the benchmarks (``benchmarks/``) both
record them with their results; this module is the one place that reads
them.
"""
import platform
import subprocess
from typing import Optional

__all__ = ['cpu_model', 'git_state']


def cpu_model(fallback: str = 'unknown CPU') -> str:
    """The CPU's model name from ``/proc/cpuinfo``, else what platform says.

    Args:
        fallback (str): The answer when neither ``/proc/cpuinfo`` (no such
            file, or no ``model name`` line, as on many ARM machines) nor
            ``platform.processor()`` names the CPU.

    Returns:
        str: e.g. ``'Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz'``.
    """
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or fallback


def git_state(repo: str) -> Optional[str]:
    """The commit the checkout ``repo`` is at, and whether it is dirty.

    Args:
        repo (str): A folder inside the git checkout.

    Returns:
        str | None: ``<short commit>``, plus `` with uncommitted changes``
        when a tracked file differs from it; None when git or the checkout
        is not there.
    """
    try:
        commit = subprocess.run(
            ['git', 'rev-parse', '--short', 'HEAD'], cwd=repo, text=True,
            capture_output=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(
            ['git', 'status', '--porcelain', '--untracked-files=no'],
            cwd=repo, text=True, capture_output=True, timeout=10,
            check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + (' with uncommitted changes' if dirty else '')
