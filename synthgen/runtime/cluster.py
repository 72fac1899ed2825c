"""Joining Ray: a local instance by default (temp dir outside $HOME, no auth token written),
or an existing cluster by address. The same pipeline code runs on both."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from synthgen.config.errors import UserError

log = logging.getLogger(__name__)


@contextlib.contextmanager
def ray_session(address: str | None = None) -> Iterator[None]:
    if address is None:
        # A local instance listens on loopback only; a token file under $HOME would outlive us.
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    import ray

    if ray.is_initialized():  # an embedding program (or a test) already owns the connection
        yield
        return
    kwargs: dict = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": True}
    if address is None:
        temp_dir = os.environ.get("RAY_TMPDIR") or os.path.join(tempfile.gettempdir(), "synthgen-ray")
        kwargs.update(num_cpus=os.cpu_count(), _temp_dir=temp_dir)
    else:
        _check_reachable(address)
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise UserError(f"could not start or join {where}: {str(exc).splitlines()[0]}") from None
    try:
        yield
    finally:
        ray.shutdown()


def _check_reachable(address: str) -> None:
    """Ray waits minutes for a GCS that is not there; a TCP probe answers in a moment."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # 'auto' and other forms Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise UserError(
            f"could not start or join the Ray cluster at {address}: tried a TCP connection to {host}:{port}: "
            f"{exc.strerror or exc}"
        ) from None


def configure_ray_data() -> None:
    import ray
    from ray.data._internal.execution.backpressure_policy import ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    # Start seeding only once every worker of the pool is up: otherwise the first actor to
    # start takes all the early batches and, on a cluster, one node does the work of all.
    context.wait_for_min_actors_s = 600
    # Ray Data's backpressure is sized for large blocks; our blocks are a batch of seeds in and a
    # few kilobytes of results out, and its policies held back dispatch for over half a second
    # at a time (the teacher idle while seeds waited). The actor pool's task caps bound us.
    context.set_config(ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY, [])
    # Ray Data samples every task's memory (USS, from /proc/self/smaps) each second for its
    # stats; our tasks hold a batch of text, and the samples cost the workers CPU.
    context.memory_usage_poll_interval_s = None
    # Ray Data calls the workers' __del__ on a graceful end only with this (private) switch:
    # that is where they close their HTTP sessions and sandbox containers.
    if hasattr(context, "_enable_actor_pool_on_exit_hook"):
        context._enable_actor_pool_on_exit_hook = True
    logging.getLogger("ray.data").setLevel(logging.WARNING)
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
