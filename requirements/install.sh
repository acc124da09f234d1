#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment with the verified MMPose stack.
#
# Usage: requirements/install.sh [VENV_DIR]   (default: .venv)
#
# The order matters and cannot be expressed in setup.py:
#   1. torch/torchvision as a matched pair (other pairs break `torchvision::nms` or pull CUDA).
#   2. pinned pure-pip deps (numpy<2 for the xtcocotools wheel, setuptools<81 for pkg_resources).
#   3. mmcv-lite (no compiled ops; PyPI has no full-mmcv wheels). mmchh installs a placeholder
#      for mmcv.ops at import. Skipped when a full mmcv is already installed.
#   4. mmpose with --no-deps (its `chumpy` dependency does not build and is never imported).
#   5. mmchh itself, editable, plus the test-only dependencies.
# A stamp file records a hash of this script and the requirement files, so a second run is a no-op
# and an edited recipe re-installs.
#
# Usage: requirements/install.sh --browser   (what `make test` runs before the suite)
#   The review report's test opens report.html in a real browser: Debian's `chromium`. When it is
#   missing and this runs as root with apt-get, it is installed (apt-get install -y chromium,
#   after apt-get update when the package is unknown), saying so; otherwise a line says how to
#   install it, and that browser test fails with the same advice. A developer without root sets
#   MMCHH_BROWSER_TESTS=skip: nothing is installed and that one test is skipped.
set -euo pipefail

ensure_browser() {
    if [ "${MMCHH_BROWSER_TESTS:-}" = "skip" ]; then
        echo "==> MMCHH_BROWSER_TESTS=skip: chromium not checked; the report's browser test is skipped"
        return 0
    fi
    local found
    found=$(command -v chromium || command -v chromium-browser || true)
    if [ -n "$found" ]; then
        echo "==> browser for the report's test: $found"
        return 0
    fi
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "==> installing Debian's chromium with apt-get (the report's browser test needs it)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }
        echo "==> browser for the report's test: $(command -v chromium)"
    else
        echo "install.sh: chromium is missing and cannot be installed here (needs root and apt-get):" \
             "install it (sudo apt-get install chromium), point MMCHH_CHROMIUM at one, or set" \
             "MMCHH_BROWSER_TESTS=skip; the report's browser test fails without it" >&2
    fi
}

if [ "${1:-}" = "--browser" ]; then
    ensure_browser
    exit 0
fi

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
venv=${1:-"$root/.venv"}
python=${PYTHON:-python3.11}

stamp="$venv/.mmchh-install-stamp"
want=$(cat "$here/install.sh" "$here/runtime.txt" "$here/tests.txt" "$root/setup.py" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi

if ! command -v "$python" >/dev/null 2>&1; then
    echo "install.sh: $python not found; mmchh's pinned stack needs CPython 3.11 (set PYTHON=...)." >&2
    exit 1
fi

echo "==> creating/updating $venv (about 2 minutes the first time)"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --disable-pip-version-check --progress-bar off)

"${pip[@]}" "torch==2.14.1" "torchvision==0.29.1"
"${pip[@]}" -r "$here/runtime.txt"
if "$venv/bin/python" -c "import mmcv._ext" >/dev/null 2>&1; then
    echo "==> full mmcv with compiled ops found; keeping it"
else
    "${pip[@]}" "mmcv-lite==2.1.0"
fi
"${pip[@]}" --no-deps "mmpose==1.3.2"
"${pip[@]}" -r "$here/tests.txt"
"${pip[@]}" --no-deps -e "$root"

echo "$want" > "$stamp"
echo "==> environment ready: $venv"
