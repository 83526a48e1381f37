#!/usr/bin/env bash
# What CI runs: set up (scripts/setup.sh), then ruff (lint, then format check), mypy and pytest;
# without arguments, also the core tests with every speed-up off. Arguments go to pytest, e.g.
# `scripts/test.sh tests/infra -x`. All of them run; the script fails if any of them failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
# Tools, `python3` and `jupyter` started by the tests come from the venv.
export PATH="$PWD/.venv/bin:$PATH" VIRTUAL_ENV="$PWD/.venv"

failed=()
echo "== ruff check ."
ruff check . || failed+=(ruff)
echo "== ruff format --check ."
ruff format --check . || failed+=("ruff format")
echo "== mypy (chopsticks_nb)"
mypy || failed+=(mypy)
echo "== pytest $*"
python -m pytest "$@" || failed+=("pytest (exit $?)")
if (($# == 0)); then
  # The speed-ups change how fast, never what: the core behaves the same with all of them off.
  echo "== pytest tests/core, every speed-up off (chopsticks_nb/_speedups.py)"
  CHOPSTICKS_NB_SPEEDUPS_OFF=all python -m pytest -q -p no:cacheprovider tests/core \
    || failed+=("pytest tests/core with speed-ups off (exit $?)")
fi

if ((${#failed[@]})); then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
