"""Which isolated sandbox backends the tests run on, and bringing up a Docker engine for them.

bwrap is required (the README's commands install it). Docker runs when an engine can: with
docker.io and debootstrap installed (tests/setup.sh does it where it may), the tests start dockerd
and build the image from a local rootfs, and skip the Docker cases with the reason otherwise."""

from __future__ import annotations

import functools
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from synthgen.engine.sandbox import SandboxUnavailable
from synthgen.engine.sandbox.docker import DEFAULT_IMAGE, engine

ISOLATED_BACKENDS = ["bwrap", "docker"]
REPO = Path(__file__).resolve().parent.parent
DOCKERD_LOG = Path("/tmp/synthgen-tests-dockerd.log")


def backend_options(backend: str) -> dict:
    if backend != "docker":
        return {}
    problem = docker_problem()
    if problem:
        print(f"SKIPPED docker sandbox: {problem}")
        pytest.skip(f"no Docker engine can run here: {problem}")
    return {"image": DEFAULT_IMAGE}


@functools.cache
def docker_problem() -> str | None:
    """None when an engine answers and the image exists, else why not."""
    try:
        client = engine()
    except SandboxUnavailable:
        problem = _start_dockerd()
        if problem:
            return problem
        client = engine()
    try:
        client.images.get(DEFAULT_IMAGE)
    except Exception:  # noqa: BLE001 - missing image: build it
        build = subprocess.run(["bash", str(REPO / "sandbox" / "build_image.sh"), DEFAULT_IMAGE],
                               capture_output=True, text=True, timeout=900)
        if build.returncode != 0:
            return f"building the image failed: {build.stderr.strip()[-500:]}"
    return None


def _start_dockerd() -> str | None:
    if shutil.which("dockerd") is None:
        return "dockerd is not installed (tests/setup.sh installs docker.io where it has root and apt)"
    with DOCKERD_LOG.open("ab") as log:
        subprocess.Popen(["dockerd"], stdout=log, stderr=log, start_new_session=True)
    for _ in range(60):
        try:
            engine()
            return None
        except SandboxUnavailable:
            time.sleep(0.5)
    return f"dockerd did not come up in 30 s; see {DOCKERD_LOG}: {DOCKERD_LOG.read_text()[-300:]}"
