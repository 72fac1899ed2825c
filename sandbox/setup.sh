#!/usr/bin/env bash
# Installs what the default sandbox backend needs: bubblewrap. Idempotent, quiet when present.
set -euo pipefail
command -v bwrap >/dev/null && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if command -v apt-get >/dev/null; then
  $SUDO apt-get install -y -q bubblewrap >/dev/null 2>&1 || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q bubblewrap >/dev/null; }
elif command -v dnf >/dev/null; then
  $SUDO dnf install -y -q bubblewrap
else
  echo "install bubblewrap with your package manager (the default sandbox needs it)" >&2
  exit 1
fi
