# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""One run at a time per output folder: a lock file.

:class:`RunLock` creates its file with ``O_CREAT | O_EXCL`` (exactly one
of two racing runs succeeds) holding the owner's pid, host and start time,
and removes it when the run ends -- only if it is still its own. A lock
whose pid is dead on this host (a killed run) is taken over with a
warning; a live one, or one from another host (whose pid cannot be
checked from here), stops the second run with one line naming the first.
"""
import json
import os
import secrets
import socket
import time
import warnings
from typing import Optional

from .errors import InputError

__all__ = ['RunLockError', 'RunLock', 'pid_alive']


class RunLockError(InputError):
    """Another run holds the lock (the message names it and the file)."""


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (this process: True;
    one owned by another user: True)."""
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _read(path: str) -> Optional[dict]:
    """The lock's content; None when it is gone or unreadable."""
    try:
        with open(path, encoding='utf-8') as f:
            content = json.load(f)
    except (OSError, ValueError):
        return None
    return content if isinstance(content, dict) else None


def _describe(owner: Optional[dict]) -> str:
    if owner is None:
        return 'a run whose lock file cannot be read'
    return (f'{owner.get("tool", "a run")} (pid {owner.get("pid")} on '
            f'{owner.get("host")}, started {owner.get("started")})')


class RunLock:
    """A lock file held for the length of a ``with`` block.

    Args:
        path (str): The lock file (its folder must exist).
        tool (str): The tool taking it, named to a second run.
        what (str): What the lock guards, named in the messages (e.g.
            ``'--out-dir preds'``).

    Raises:
        RunLockError: on entering, when a live run holds the lock.
    """

    def __init__(self, path: str, tool: str, what: str):
        self.path, self.tool, self.what = path, tool, what
        self.content = dict(tool=tool, pid=os.getpid(),
                            host=socket.gethostname(),
                            started=time.strftime('%Y-%m-%dT%H:%M:%S'),
                            token=secrets.token_hex(8))

    def _create(self) -> bool:
        """Creates the file with our content; False if it exists."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                         0o666)
        except FileExistsError:
            return False
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            json.dump(self.content, f)
        return True

    def _take_over(self, owner: dict) -> bool:
        """Removes the stale lock ``owner`` -- only that one: it is renamed
        aside first and checked, so a fresh lock another run made in the
        meantime is put back, never deleted."""
        aside = f'{self.path}.stale-{os.getpid()}-{secrets.token_hex(4)}'
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return True  # gone meanwhile: try again
        if _read(aside) != owner:  # not the stale one: put it back
            try:
                os.link(aside, self.path)
            except OSError:
                pass  # yet another lock is there now: it holds
            os.remove(aside)
            return False
        os.remove(aside)
        warnings.warn(f'{self.what}: took over the lock {self.path} of '
                      f'{_describe(owner)}, which is no longer running')
        return True

    def __enter__(self) -> 'RunLock':
        for _ in range(3):
            if self._create():
                return self
            owner = _read(self.path)
            stale = owner is not None and owner.get(
                'host') == socket.gethostname() and isinstance(
                    owner.get('pid'), int) and not pid_alive(owner['pid'])
            if not stale or not self._take_over(owner):
                break
        raise RunLockError(
            f'{self.what} is in use by {_describe(_read(self.path))}; '
            'wait for it to end or choose another folder (if that run is '
            f'gone, delete {self.path})')

    def __exit__(self, *exc) -> None:
        if _read(self.path) == self.content:  # still ours (not swapped out)
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
