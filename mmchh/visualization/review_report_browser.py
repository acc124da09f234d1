# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""The review report as a browser shows it: headless Chromium, from disk.

:func:`render_report` opens ``report.html`` by its ``file://`` URL in
headless Chromium (Debian's ``chromium``; ``MMCHH_CHROMIUM`` names another
binary), with networking, sync, updates and the GPU off and a throw-away
profile (and ``/tmp`` rather than a container's small ``/dev/shm``), and
gives the rendered DOM and, on request, a screenshot. The
report's test and ``make report-screenshot`` (``docs/images/
review_report.png``) go through it::

    python -m mmchh.visualization.review_report_browser REPORT.html OUT.png
"""
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile
from typing import Optional, Sequence, Tuple

__all__ = ['WINDOW', 'find_browser', 'render_report']

#: The browser window (width, height) in CSS pixels.
WINDOW = (1280, 1500)

_FLAGS = ('--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
          '--no-first-run', '--disable-background-networking',
          '--disable-component-update', '--disable-sync',
          '--disable-dev-shm-usage', '--hide-scrollbars')


def find_browser() -> Optional[str]:
    """``MMCHH_CHROMIUM``, else ``chromium`` / ``chromium-browser`` on the
    PATH, else None."""
    given = os.environ.get('MMCHH_CHROMIUM')
    if given:
        return given
    for name in ('chromium', 'chromium-browser'):
        found = shutil.which(name)
        if found:
            return found
    return None


def render_report(report: str, screenshot: Optional[str] = None,
                  window: Tuple[int, int] = WINDOW,
                  timeout: float = 120.0) -> str:
    """The DOM of ``report`` after headless Chromium rendered it, and with
    ``screenshot`` a PNG of the window (written by the browser).

    Args:
        report (str): The HTML file.
        screenshot (str, optional): Where to write the window's PNG.
        window (tuple[int, int]): Window width and height.
        timeout (float): Seconds each browser run may take.

    Returns:
        str: The rendered DOM (``--dump-dom``).

    Raises:
        FileNotFoundError: without a browser (saying how to get one).
        subprocess.CalledProcessError: when the browser fails.
    """
    browser = find_browser()
    if browser is None:
        raise FileNotFoundError(
            'no chromium: install it (apt-get install chromium, or '
            'requirements/install.sh --browser as root) or set '
            'MMCHH_CHROMIUM to a Chromium binary')
    url = 'file://' + osp.abspath(report)
    with tempfile.TemporaryDirectory(prefix='mmchh_chromium_') as profile:
        common: Sequence[str] = [
            browser, *_FLAGS, f'--user-data-dir={profile}',
            f'--window-size={window[0]},{window[1]}']
        if screenshot is not None:
            os.makedirs(osp.dirname(osp.abspath(screenshot)), exist_ok=True)
            subprocess.run([*common, f'--screenshot={osp.abspath(screenshot)}',
                            url], check=True, capture_output=True,
                           timeout=timeout)
        return subprocess.run([*common, '--dump-dom', url], check=True,
                              capture_output=True, text=True,
                              timeout=timeout).stdout


if __name__ == '__main__':
    if len(sys.argv) != 3:
        sys.exit('usage: python -m mmchh.visualization.review_report_browser '
                 'REPORT.html OUT.png')
    render_report(sys.argv[1], sys.argv[2])
    print(f'screenshot of {sys.argv[1]}: {sys.argv[2]}')
