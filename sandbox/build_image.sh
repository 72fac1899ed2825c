#!/usr/bin/env bash
# Builds the sandbox image without any registry: a Debian minbase root filesystem with Python,
# imported into the local Docker engine. The agent is not baked in: it is bind-mounted read-only
# at run time, so the image does not change when the agent does.
#   usage: bash sandbox/build_image.sh [IMAGE]   (default synthgen-sandbox:bookworm)
set -euo pipefail
IMAGE="${1:-synthgen-sandbox:bookworm}"
ROOTFS="$(mktemp -d /tmp/synthgen-rootfs.XXXXXX)"
trap 'rm -rf "$ROOTFS"' EXIT
if ! command -v debootstrap >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
fi
MIRROR="$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)"
debootstrap --variant=minbase --include=python3 bookworm "$ROOTFS" "${MIRROR:-http://deb.debian.org/debian}" >/dev/null
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
tar -C "$ROOTFS" -c . | docker import \
  --change 'USER root' --change 'WORKDIR /tmp' --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' - "$IMAGE" >/dev/null
echo "$IMAGE"
