"""Importing mmchh (with mmpose.apis, which MMEngine's pkg_resources
import follows) and a tool's --help emit no deprecation warning from our
code path and no pkg_resources notice, with every warning shown.

A fresh interpreter per case: a module warns once, on its first import,
so only a new process shows what a user's run prints."""
import os.path as osp
import re
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: ``path:line: Category: message`` as warnings.showwarning prints it
WARNING_LINE = re.compile(r'^(?P<path>.+?):\d+: (?P<kind>\w+Warning): ')


def warnings_of(args):
    """The (path, category, line) of every warning a fresh interpreter
    prints running ``args`` with all warnings shown."""
    proc = subprocess.run([sys.executable, '-W', 'always'] + args,
                          cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = []
    for line in proc.stderr.splitlines():
        m = WARNING_LINE.match(line)
        if m:
            found.append((m['path'], m['kind'], line))
    return found, proc.stderr


def ours(path):
    path = osp.abspath(osp.join(REPO, path))
    return any(path.startswith(osp.join(REPO, room) + osp.sep)
               for room in ('mmchh', 'tools'))


@pytest.mark.parametrize('args', [
    ['-c', 'import mmchh; import mmpose.apis'],
    ['tools/infer.py', '--help'],
    ['tools/train.py', '--help'],
], ids=['import', 'infer-help', 'train-help'])
def test_no_deprecation_warning_from_our_code(args):
    found, stderr = warnings_of(args)
    assert 'pkg_resources' not in stderr
    bad = [line for path, kind, line in found
           if ours(path) and kind in ('DeprecationWarning',
                                      'PendingDeprecationWarning',
                                      'FutureWarning', 'UserWarning')]
    assert not bad, bad


def test_filter_is_scoped_to_mmengines_import():
    """Only MMEngine's notice is ignored: the same message from any other
    module, and any other warning from MMEngine's module, still show."""
    code = (
        'import warnings, mmchh\n'
        'for module in ("mmengine.utils.package_utils", "elsewhere"):\n'
        '    for text in ("pkg_resources is deprecated as an API", "other"):'
        '\n'
        '        warnings.warn_explicit(text, UserWarning, "f.py", 1,\n'
        '                               module=module)\n')
    found, _ = warnings_of(['-c', code])
    shown = [line.split('UserWarning: ')[1] for _, _, line in found
             if line.startswith('f.py')]
    assert shown == ['other', 'pkg_resources is deprecated as an API',
                     'other']
