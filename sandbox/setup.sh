#!/usr/bin/env bash
# Installs what the isolated sandbox backends need: bubblewrap, and libseccomp (the syscall
# filter; part of every Debian base system). Idempotent, quiet when present.
set -euo pipefail
command -v bwrap >/dev/null && ldconfig -p 2>/dev/null | grep 'libseccomp\.so\.2' >/dev/null && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if command -v apt-get >/dev/null; then
  $SUDO apt-get install -y -q bubblewrap libseccomp2 >/dev/null 2>&1 || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q bubblewrap libseccomp2 >/dev/null; }
elif command -v dnf >/dev/null; then
  $SUDO dnf install -y -q bubblewrap libseccomp
else
  echo "install bubblewrap and libseccomp with your package manager (the default sandbox needs them)" >&2
  exit 1
fi
