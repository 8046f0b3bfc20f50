#!/usr/bin/env bash
# Sets up .venv if needed, then runs the main job on the built-in defaults (the demo, written to demo_out/).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$root/scripts/setup.sh"
cd "$root"
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE
exec .venv/bin/pano-perception demo --out "${1:-demo_out}"
