#!/usr/bin/env bash
# Creates .venv and installs everything pano_perception needs (pip-only path, CPU torch).
# Idempotent: does nothing when the requirement files have not changed since the last run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
venv="$root/.venv"
stamp="$venv/.pano_perception_installed"
want="$(cat requirements/*.txt setup.py setup.cfg package.xml | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
"$python" - <<'PY'
import sys
if not ((3, 10) <= sys.version_info[:2] <= (3, 12)):
    sys.exit(f"pano_perception needs Python 3.10-3.12 (the ROS 2 wheels); {sys.version.split()[0]} found. "
             "Set PYTHON=/path/to/python3.11 and run again.")
PY
if [ ! -x "$venv/bin/python" ]; then
  if ! "$python" -m venv "$venv" 2>/dev/null; then
    # Debian/Ubuntu ship venv separately; install it when we may.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    else
      echo "pano_perception: '$python -m venv' failed; install python3-venv (sudo apt-get install python3-venv)" >&2
      exit 1
    fi
    rm -rf "$venv"
    "$python" -m venv "$venv"
  fi
fi
pip=("$venv/bin/python" -m pip)
"${pip[@]}" install --quiet --upgrade pip 'setuptools>=70,<81' wheel
constraints=(-c requirements/constraints-cpu.txt)
echo "pano_perception: installing Python packages into .venv (first run: about 2 minutes)..."
"${pip[@]}" install --quiet "${constraints[@]}" -r requirements/base.txt -r requirements/dev.txt
# sam2 ships sources only: no build isolation (else pip fetches a CUDA torch to build in), no CUDA extension.
SAM2_BUILD_CUDA=0 "${pip[@]}" install --quiet "${constraints[@]}" --no-build-isolation sam2==1.1.0
"${pip[@]}" install --quiet "${constraints[@]}" --no-build-isolation --no-deps -e .
echo "$want" > "$stamp"
echo "pano_perception: .venv ready"
