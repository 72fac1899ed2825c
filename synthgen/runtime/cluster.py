"""Joining Ray: a local instance by default (temp dir outside $HOME, no auth token written),
or an existing cluster by address. The same pipeline code runs on both.

Starting a local instance costs a run seconds (and stopping it one more): `synthgen ray start`
leaves one running, which every later run on this machine joins by itself until `synthgen ray
stop` — a quick look then starts in a fraction of a second. (It lives under $RAY_TMPDIR: the
test suite, which sets its own, never joins a developer's.)"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from synthgen.config.errors import UserError
from synthgen.storage.location import storage_environment

log = logging.getLogger(__name__)


@contextlib.contextmanager
def ray_session(address: str | None = None) -> Iterator[None]:
    if address is None and os.environ.get("RAY_ADDRESS"):
        # What `ray job submit -- synthgen run …` gives its entrypoint: the cluster to join.
        address = os.environ["RAY_ADDRESS"]
        log.info("joining the Ray cluster at %s (from RAY_ADDRESS)", address)
    if address is None:
        # A local instance listens on loopback only; a token file under $HOME would outlive us.
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    import ray

    if ray.is_initialized():  # an embedding program (or a test) already owns the connection
        yield
        return
    kwargs: dict = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": True}
    if address is None and (address := kept_instance()) is not None:
        log.info("joining the local Ray instance left running by `synthgen ray start` (%s)", address)
        kwargs["address"] = address
    elif address is None:
        temp_dir = os.environ.get("RAY_TMPDIR") or os.path.join(tempfile.gettempdir(), "synthgen-ray")
        kwargs.update(num_cpus=os.cpu_count(), _temp_dir=temp_dir)
    else:
        _check_reachable(address)
        kwargs["address"] = address
    if "address" in kwargs and (storage := storage_environment()):
        # Workers of a cluster (or of a kept instance) do not inherit this process's environment;
        # a run directory on object storage needs its credentials and endpoint in every worker.
        kwargs["runtime_env"] = {"env_vars": storage}
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise UserError(f"could not start or join {where}: {str(exc).splitlines()[0]}") from None
    try:
        yield
    finally:
        ray.shutdown()


def alive_nodes() -> int:
    """Nodes of the connected Ray cluster that are up (run-wide actors go one per node)."""
    import ray

    return max(1, sum(1 for node in ray.nodes() if node["Alive"]))


def _kept_dir() -> Path:
    return Path(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()) / "synthgen-ray-kept"


def kept_instance() -> str | None:
    """The address of the instance `synthgen ray start` left running, if it still answers."""
    try:
        address = (_kept_dir() / "address").read_text().strip()
        host, port = address.rsplit(":", 1)
        answers = _tcp_failure(host, int(port), timeout_s=1) is None
    except (OSError, ValueError):
        return None
    return address if answers else None


def start_kept_instance() -> str:
    """Start a local instance that outlives this command (or say where the running one is)."""
    running = kept_instance()
    if running:
        return running
    folder = _kept_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", f"--num-cpus={os.cpu_count()}",
               "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={folder}"]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise UserError(f"could not start a local Ray instance: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    address = f"127.0.0.1:{port}"
    _warm_up(address)
    (folder / "address").write_text(address)
    return address


def _warm_up(address: str) -> None:
    """Run a one-row Ray Data job: the first job on an instance creates Ray Data's detached
    helper actors (stats, autoscaling, locations; ~3 s), which then serve every later run."""
    import ray

    with ray_session(address):
        configure_ray_data()
        ray.data.range(1).map_batches(lambda batch: batch).take_all()


def stop_kept_instance(timeout_s: float = 10.0) -> int:
    """End the processes of the kept instance (only those: other Ray instances are left alone);
    returns how many there were."""
    folder = str(_kept_dir())
    pids = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit() and _cmdline_has(entry, folder)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout_s
        while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
    (Path(folder) / "address").unlink(missing_ok=True)
    return len(pids)


def _cmdline_has(process: Path, text: str) -> bool:
    try:
        return text.encode() in (process / "cmdline").read_bytes()
    except OSError:
        return False


def _check_reachable(address: str) -> None:
    """Ray waits minutes for a GCS that is not there; a TCP probe answers in a moment."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # 'auto' and other forms Ray resolves itself
    failure = _tcp_failure(host, int(port), timeout_s=5)
    if failure is not None:
        raise UserError(
            f"could not start or join the Ray cluster at {address}: tried a TCP connection to {host}:{port}: "
            f"{failure.strerror or failure}"
        )


def _tcp_failure(host: str, port: int, timeout_s: float) -> OSError | None:
    """Why nothing accepts a TCP connection at host:port, or None when something does."""
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        return exc
    return None


READ_AHEAD_KEY = "synthgen.read_ahead_blocks"


@contextlib.contextmanager
def one_row_blocks() -> Iterator[None]:
    """Datasets created inside keep every row its own block: a block larger than Ray Data's
    target size is cut into rows, and the target is one byte. (A dataset keeps the context it
    was created in; datasets created outside keep the default.)"""
    import ray

    context = ray.data.DataContext.get_current()
    target = context.target_max_block_size
    context.target_max_block_size = 1
    try:
        yield
    finally:
        context.target_max_block_size = target


def _read_ahead_policy():
    from ray.data._internal.execution.backpressure_policy import BackpressurePolicy

    class ReadAhead(BackpressurePolicy):
        """Stop reading an operator's task outputs while enough of its blocks wait for the next
        operator: without it the seed read runs ahead of the workers by the whole source, its
        blocks held in the object store and their references in the driver. A paused read task
        stops at Ray's streaming-generator limit, so seeds are read as fast as they are used."""

        def max_task_output_bytes_to_read(self, op) -> int | None:
            limit = self._data_context.get_config(READ_AHEAD_KEY, None)
            if limit is None or not op.output_dependencies:
                return None
            waiting = self._topology[op].output_queue.num_blocks
            waiting += sum(self._topology[after].total_enqueued_input_blocks() for after in op.output_dependencies)
            return 0 if waiting >= limit else None

    return ReadAhead


def configure_ray_data(read_ahead_blocks: int = 64, whole_pool_first: bool = False) -> None:
    """Ray Data as a run uses it; an operator feeding another reads its tasks' outputs only while
    fewer than `read_ahead_blocks` blocks wait between the two."""
    import ray
    from ray.data._internal.execution.backpressure_policy import ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    # With `whole_pool_first`, seeding starts only once every worker of the pool is up: otherwise
    # the first actor to start takes the early batches (on a cluster, one node does the work of
    # all; with a batch API, seeds reach a step at different times and its requests go in more
    # batches). Otherwise the seed read starts with the pool, seconds sooner.
    context.wait_for_min_actors_s = 600 if whole_pool_first else 0
    # Ray Data's backpressure is sized for large blocks; our blocks are a batch of seeds in and a
    # few kilobytes of results out, and its policies held back dispatch for over half a second
    # at a time (the teacher idle while seeds waited). The actor pool's task caps bound the
    # workers; `ReadAhead` bounds how far the seed read runs ahead of them.
    context.set_config(ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY, [_read_ahead_policy()])
    context.set_config(READ_AHEAD_KEY, read_ahead_blocks)
    # Ray Data samples every task's memory (USS, from /proc/self/smaps) each second for its
    # stats; our tasks hold a batch of text, and the samples cost the workers CPU.
    context.memory_usage_poll_interval_s = None
    # Ray Data calls the workers' __del__ on a graceful end only with this (private) switch:
    # that is where they close their HTTP sessions and sandbox containers.
    if hasattr(context, "_enable_actor_pool_on_exit_hook"):
        context._enable_actor_pool_on_exit_hook = True
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    # A run smaller than its pool has fewer seed blocks than workers; Ray Data warns of that.
    warnings.filterwarnings("ignore", message="The minimum number of concurrent actors")
    # We turn the bars off on purpose (our own progress lines replace them); no need to say so.
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)


def map_rows(rows: list[dict], function: Callable[..., pa.Table], kwargs: dict[str, Any], batch_size: int) -> Iterator[pa.Table]:
    """`function(batch, **kwargs)` over the rows as Ray tasks (a local instance unless one is
    already connected), one Arrow batch in and out per task; results as they come."""
    import ray

    with ray_session(None):
        dataset = ray.data.from_items(rows).map_batches(function, fn_kwargs=kwargs, batch_size=batch_size,
                                                        batch_format="pyarrow")
        yield from dataset.iter_batches(batch_format="pyarrow", batch_size=None)
