#!/usr/bin/env bash
# What the test suite needs from the system, installed here, before pytest, never from inside a test:
#   bubblewrap                the default sandbox (sandbox/setup.sh)
#   docker.io + debootstrap   the Docker sandbox backend and its image, built from a local rootfs
#   chromium                  renders the HTML run report in a real browser
# Where they cannot be installed (no root or no apt), the tests that need Docker or chromium are
# reported as skipped with the reason; bubblewrap is required.
set -euo pipefail
cd "$(dirname "$0")/.."
bash sandbox/setup.sh
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v chromium >/dev/null || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "tests/setup.sh: not installing ${missing[*]} (needs root and apt); the tests that need them will be skipped" >&2
  exit 0
fi
echo "tests/setup.sh: installing ${missing[*]} (Docker sandbox tests, report rendering)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
  || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; } \
  || echo "tests/setup.sh: installing ${missing[*]} failed; the tests that need them will be skipped" >&2
