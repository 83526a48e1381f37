#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run examples/demo.py: four local hosts, one call each.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
exec .venv/bin/python examples/demo.py "$@"
