#!/usr/bin/env bash
# Runs every test: sets up .venv if needed, then pytest, then the colcon workspace build check.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$root/scripts/setup.sh"
cd "$root"
# A child of another ROS-wheels venv must not skip this venv's library-path bootstrap.
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 101 ))}"
.venv/bin/python -m pytest "$@"
