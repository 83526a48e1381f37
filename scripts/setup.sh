#!/usr/bin/env bash
# Prepare this clone for the demo and the tests. Safe to run again: it only does what is missing.
#  1. As root on Debian: install the system packages the real-component tests use
#     (sshd, sudo, podman, debootstrap, chromium, ...), with one `apt-get update` when needed.
#  2. Create .venv with the machine's python3 and install this package with its test extra.
# Output is kept short; a failing step prints its full log and stops the script.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# iptables: the fault tests cut links inside network namespaces (tests/fixtures/netns.py).
# slurm-wlm (slurmctld, slurmd, the client commands) and munge: tests/fixtures/slurm.py.
APT_PACKAGES=(openssh-server openssh-client sudo iproute2 iptables podman runc debootstrap chromium
  slurm-wlm munge)
VENV=.venv
PYTHON=${PYTHON:-python3}

say() { printf 'setup: %s\n' "$*" >&2; }

# Run a command with its output in a log; show the log only if it fails.
quietly() {
  local log
  log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then
    say "FAILED: $*"
    cat "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
}

is_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

system_packages() {
  local missing=() p
  if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
    say "not Debian: install ${APT_PACKAGES[*]} yourself (tests needing them will skip)"
    return
  fi
  for p in "${APT_PACKAGES[@]}"; do
    is_installed "$p" || missing+=("$p")
  done
  # Debian's own python3 needs python3-venv for `python3 -m venv`.
  if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    missing+=(python3-venv)
  fi
  ((${#missing[@]})) || return 0
  if [ "$(id -u)" != 0 ]; then
    say "not root: install ${missing[*]} yourself (tests needing them will skip)"
    return
  fi
  say "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  quietly apt-get update -q
  quietly apt-get install -y -q --no-install-recommends "${missing[@]}"
}

python_env() {
  local stamp="$VENV/.chopsticks-nb-setup" want
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    # Resolve pyenv-style shims to the real interpreter so the venv does not depend on them.
    local real
    real=$("$PYTHON" -c 'import sys; print(sys.executable)')
    say "creating $VENV with $real ($("$real" -V 2>&1))"
    rm -rf "$VENV"
    quietly "$real" -m venv "$VENV"
    quietly "$VENV/bin/python" -m pip install -q --upgrade pip
  fi
  # Reinstall only when the project's metadata changed (the install is editable).
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
      && "$VENV/bin/python" -c 'import chopsticks_nb' 2>/dev/null; then
    return
  fi
  say "pip install -e '.[test,bench]'"
  quietly "$VENV/bin/python" -m pip install -q -e '.[test,bench]'
  echo "$want" >"$stamp"
}

system_packages
python_env
say "ready ($VENV)"
