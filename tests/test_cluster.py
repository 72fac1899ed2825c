"""The same command on a two-node Ray cluster (both nodes on loopback): work runs on both."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import pytest

from conftest import free_port, SHIPPED_CODE_SEEDS, synthgen_cli, workflow_yaml

from synthgen.storage.query import connect



@dataclass
class Cluster:
    address: str  # what `--address` and RAY_ADDRESS take
    dashboard: str | None  # the job server's URL, what `ray job submit --address` takes


@contextlib.contextmanager
def _two_node_cluster(jobs: bool):
    port = free_port()
    # Ray's unix sockets live under the temp dir and their paths must stay under 108 bytes.
    temp_dir = tempfile.mkdtemp(prefix="sg-", dir="/tmp")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    ray_cli = [sys.executable, "-m", "ray.scripts.scripts"]
    dashboard_port = free_port()
    # The job server lives in the dashboard; each node's agent on a port of its own (two nodes
    # share this host, and Ray's default agent port would be taken twice).
    server = ["--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}"] if jobs else ["--include-dashboard=false"]
    agent = (lambda: [f"--dashboard-agent-listen-port={free_port()}"]) if jobs else list
    # Each `ray start` in its own session, so that the fixture can end exactly its own daemons
    # (`ray stop` would also stop the test session's local Ray).
    starters = []
    head = [*ray_cli, "start", "--head", f"--port={port}", *server, *agent(), f"--temp-dir={temp_dir}", *common]
    worker = [*ray_cli, "start", f"--address=127.0.0.1:{port}", *agent(), *common]
    try:
        for command in (head, worker):
            starter = subprocess.Popen(command, env=env, start_new_session=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            output, _ = starter.communicate(timeout=120)
            starters.append(starter)
            assert starter.returncode == 0, output
        yield Cluster(f"127.0.0.1:{port}", f"http://127.0.0.1:{dashboard_port}" if jobs else None)
    finally:
        for starter in starters:
            subprocess.run(["pkill", "-9", "-s", str(starter.pid)], check=False)
        time.sleep(0.5)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def two_node_cluster():
    with _two_node_cluster(jobs=False) as cluster:
        yield cluster.address


@pytest.fixture
def two_node_cluster_with_jobs():
    with _two_node_cluster(jobs=True) as cluster:
        yield cluster


@pytest.mark.parametrize("joined_by", ["--address", "RAY_ADDRESS"])
def test_run_on_a_cluster_uses_both_nodes(two_node_cluster, teacher, tmp_path, joined_by):
    """`--address`, or RAY_ADDRESS: what `ray job submit -- synthgen run …` hands its entrypoint."""
    teacher.latency_s = 0.05
    workflow = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=teacher.url)
    out = tmp_path / "out"
    how = ["--address", two_node_cluster] if joined_by == "--address" else []
    env = {"RAY_AUTH_MODE": "disabled"} | ({"RAY_ADDRESS": two_node_cluster} if joined_by == "RAY_ADDRESS" else {})
    result = synthgen_cli("run", str(workflow), "--out", str(out), *how, env=env)
    assert result.returncode == 0, result.stderr
    nodes = connect(out).execute("SELECT node, count(*) FROM data GROUP BY node").fetchall()
    assert len(nodes) == 2, f"work ran on {nodes}"
    assert sum(count for _, count in nodes) == 65


def test_ray_job_submit_runs_a_run_on_both_nodes(two_node_cluster_with_jobs, teacher, tmp_path):
    """The README's command: `ray job submit --address DASHBOARD -- synthgen run …`; the job's
    entrypoint joins the cluster through the RAY_ADDRESS the job server gives it."""
    teacher.latency_s = 0.05
    workflow = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=teacher.url)
    out = tmp_path / "out"
    submit = [sys.executable, "-m", "ray.scripts.scripts", "job", "submit", "--address", two_node_cluster_with_jobs.dashboard,
              "--", sys.executable, "-m", "synthgen", "run", str(workflow), "--out", str(out)]
    result = subprocess.run(submit, env={**os.environ, "RAY_AUTH_MODE": "disabled"}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "seeds settled   65" in result.stdout, result.stdout[-3000:]  # the run's summary, streamed back
    nodes = connect(out).execute("SELECT node, count(*) FROM data GROUP BY node").fetchall()
    assert len(nodes) == 2, f"work ran on {nodes}"
    assert sum(count for _, count in nodes) == 65


def test_unreachable_cluster_address_is_a_clear_error(teacher, tmp_path):
    workflow = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=teacher.url)
    result = synthgen_cli("run", str(workflow), "--out", str(tmp_path / "out"), "--address", f"127.0.0.1:{free_port()}",
                          timeout=180)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "could not start or join the Ray cluster at 127.0.0.1:" in result.stderr


def test_a_kept_local_instance_is_joined_by_every_run_until_stopped(teacher, tmp_path):
    """`synthgen ray start` leaves a local instance running; runs join it (no start-up, no
    shutdown); `synthgen ray stop` ends exactly its processes."""
    env = {"RAY_TMPDIR": tempfile.mkdtemp(prefix="sg-", dir="/tmp")}  # not a developer's own kept instance
    kept = os.path.join(env["RAY_TMPDIR"], "synthgen-ray-kept")
    path = workflow_yaml(tmp_path / "wf.yaml", seeds=SHIPPED_CODE_SEEDS, url=teacher.url)
    started = synthgen_cli("ray", "start", env=env)
    try:
        assert started.returncode == 0 and "running at 127.0.0.1:" in started.stdout, started.stderr
        assert synthgen_cli("ray", "start", env=env).stdout == started.stdout, "a second start finds the first"
        for limit in ("3", "6"):
            result = synthgen_cli("run", str(path), "--out", str(tmp_path / "out"), "--limit", limit, env=env)
            assert result.returncode == 0, result.stderr
            assert "joining the local Ray instance left running by `synthgen ray start`" in result.stderr
        assert connect(tmp_path / "out").execute("SELECT count(*) FROM data").fetchone()[0] == 6
    finally:
        stopped = synthgen_cli("ray", "stop", env=env)
    assert stopped.returncode == 0 and "stopped the kept local Ray instance" in stopped.stdout
    left = subprocess.run(["pgrep", "-f", kept], capture_output=True, text=True).stdout.split()
    assert not left, f"processes of the kept instance still running: {left}"
    shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)

