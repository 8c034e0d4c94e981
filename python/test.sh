#!/usr/bin/env bash
# The Python package's tests: a virtual environment of their own, the package installed from
# this folder (maturin builds the native module in the repository's target/, so after
# `cargo test --release` only amisim's own crates and PyO3 compile), then pytest.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if ! command -v python3 >/dev/null || ! python3 -c "import venv, ensurepip" 2>/dev/null; then
    echo "the Python tests need python3 with venv; on Debian/Ubuntu:" >&2
    echo "    sudo apt-get install -y python3-venv" >&2
    exit 1
fi
target="${CARGO_TARGET_DIR:-$here/../target}"
venv="$target/python-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check numpy gymnasium pytest
"$venv/bin/python" -m pip install -q --disable-pip-version-check "$here"
# From tests/, so that `import amisim` is the installed package, not the source folder beside it.
cd "$here/tests"
"$venv/bin/python" -m pytest -q
