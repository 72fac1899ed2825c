"""The sandbox against hostile code, on every isolated backend that can run here.

Each attack runs in a real sandbox; afterwards the host is checked (files, processes, sockets),
and the same warm agent must still run a clean job correctly."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from synthgen.engine.sandbox import Job, Limits, open_sandbox
from tests.sandbox_engines import ISOLATED_BACKENDS, backend_options

TIGHT = Limits(wall_s=3, cpu_s=3, memory_mb=256, processes=24, output_bytes=16 * 1024, file_bytes=1024 * 1024)


@pytest.fixture(scope="module", params=ISOLATED_BACKENDS)
def pool(request):
    options = backend_options(request.param)
    with open_sandbox(request.param, slots=1, ceiling=TIGHT, **options) as sandbox:
        sandbox.warm_up()
        yield sandbox


def run(pool, code: str, limits: Limits = TIGHT, **job) -> object:
    return pool.run(Job(files={"main.py": code}, python="main.py", limits=limits, **job))


def assert_still_healthy(pool) -> None:
    result = run(pool, "print(sum(range(10)))")
    assert (result.status, result.stdout.strip()) == ("passed", "45"), result


def host_processes_with(token: str) -> list[int]:
    """Host pids whose command line carries `token`: this job's processes and nobody else's."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as handle:
                    if token.encode() in handle.read():
                        found.append(int(name))
            except OSError:
                continue
    return found


def test_runs_code_and_reports_failing_tests(pool):
    result = pool.run(Job.with_tests(
        "def add(a, b):\n    return a + b\n",
        "def test_ok():\n    assert add(1, 2) == 3\n\ndef test_wrong():\n    assert add(2, 2) == 5\n",
    ))
    assert result.status == "failed"
    assert result.failed_tests == ["test_wrong"]
    assert "assert add(2, 2) == 5" in result.evidence and "AssertionError" in result.evidence


def test_early_exit_is_not_a_pass(pool):
    """Solution code that exits 0 before any test runs must not count as passing."""
    result = pool.run(Job.with_tests("import os\nos._exit(0)\n", "def test_x():\n    assert False\n"))
    assert result.status == "error" and result.broken == "solution" and "ended (exit code 0)" in result.reason


def test_forged_report_is_not_a_pass(pool):
    forged = 'import os, json\nos.write(3, json.dumps({"nonce": "guess", "tests": []}).encode())\nos._exit(0)\n'
    result = pool.run(Job.with_tests(forged, "def test_x():\n    assert False\n"))
    assert result.status == "error"


def test_no_loopback_to_host(pool):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted = []
    listener.settimeout(3)
    thread = threading.Thread(target=lambda: accepted.append(_accept(listener)), daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    result = run(pool, f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('CONNECTED')")
    thread.join()
    listener.close()
    assert "CONNECTED" not in result.stdout and result.status == "failed", result
    assert accepted == [None]


def _accept(listener):
    try:
        return listener.accept()
    except OSError:
        return None


def test_no_external_network(pool):
    code = (
        "import socket\n"
        "for host in [('1.1.1.1', 53), ('pypi.org', 443)]:\n"
        "    try:\n"
        "        socket.create_connection(host, timeout=2); print('REACHED', host)\n"
        "    except OSError as e: print('blocked', e)\n"
    )
    result = run(pool, code)
    assert "REACHED" not in result.stdout and result.stdout.count("blocked") == 2, result


def test_host_files_are_invisible(pool, tmp_path):
    canaries = [tmp_path / "canary.txt", Path(__file__).resolve().parent / ".canary-sandbox-test"]
    for canary in canaries:
        canary.write_text("SECRET-CANARY")
    try:
        paths = [str(c) for c in canaries] + [__file__, "/etc/shadow", os.path.expanduser("~/.bash_history")]
        code = f"for p in {paths!r}:\n    try: print(open(p).read())\n    except OSError as e: print('denied', p)\n"
        result = run(pool, code)
    finally:
        for canary in canaries:
            canary.unlink()
    assert "SECRET-CANARY" not in result.stdout and "hostile code" not in result.stdout, result
    assert result.stdout.count("denied") == 5


def test_cannot_write_outside_work_dir(pool, tmp_path):
    targets = ["/tmp/escape", "/usr/escape", "/etc/escape", "/opt/synthgen/escape", "/root/escape", str(tmp_path / "escape")]
    code = f"for p in {targets!r}:\n    try: open(p, 'w').write('x'); print('WROTE', p)\n    except OSError: print('refused', p)\n"
    result = run(pool, code)
    assert "WROTE" not in result.stdout, result
    for target in targets:
        assert not Path(target).exists(), target


def test_api_key_never_reaches_the_sandbox(monkeypatch):
    """Planted in the host environment before the sandbox starts: not in the job's env or any /proc environ."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-planted-canary-123")
    code = (
        "import os\nprint(dict(os.environ))\n"
        "for pid in os.listdir('/proc'):\n"
        "    if pid.isdigit():\n"
        "        try: print(open(f'/proc/{pid}/environ', 'rb').read())\n"
        "        except OSError: pass\n"
    )
    for backend in ISOLATED_BACKENDS:
        with open_sandbox(backend, slots=1, ceiling=TIGHT, **backend_options(backend)) as sandbox:
            result = run(sandbox, code)
        assert result.status == "passed", result
        assert "sk-planted" not in result.stdout + result.stderr


def test_fork_bomb_is_contained(pool):
    result = run(pool, "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass\n")
    assert result.status in ("timeout", "killed", "failed"), result
    assert_still_healthy(pool)


def test_memory_bomb_is_contained(pool):
    result = run(pool, "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 2**20))\n")
    assert result.status == "memory", result


def test_infinite_loop_times_out(pool):
    started = time.monotonic()
    result = run(pool, "while True:\n    pass\n", limits=TIGHT.model_copy(update={"wall_s": 1.0}))
    assert result.status == "timeout", result
    assert time.monotonic() - started < 5


def test_cpu_spin_in_threads_is_bounded(pool):
    code = "import threading\ndef spin():\n    while True:\n        pass\nfor _ in range(8):\n    threading.Thread(target=spin).start()\n"
    started = time.monotonic()
    result = run(pool, code, limits=TIGHT.model_copy(update={"wall_s": 1.5, "cpu_s": 1}))
    assert result.status == "timeout", result
    assert time.monotonic() - started < 6
    assert_still_healthy(pool)


def test_huge_stdout_is_capped_and_cut(pool):
    started = time.monotonic()
    result = run(pool, "import sys\nblock = 'x' * 2**20\nfor _ in range(100):\n    sys.stdout.write(block)\n")
    assert result.status == "killed" and "output" in result.reason, result
    assert len(result.stdout) <= TIGHT.output_bytes
    assert time.monotonic() - started < 10


def test_detached_child_does_not_outlive_the_job(pool):
    token = f"detached-{uuid.uuid4().hex}"
    code = (
        "import os, sys\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(60)', '{token}'])\n"
        "    os._exit(0)\n"
        "import time; time.sleep(0.3)\nprint('parent done')\n"
    )
    result = run(pool, code)
    assert result.status == "passed" and result.duration_s < 2, result
    probe = run(pool, "import os\nprint(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))")
    pids_inside = json.loads(probe.stdout)
    # Left inside: the namespace's init and the agent (pids 1-2), and the probe itself.
    assert len(pids_inside) <= 3, pids_inside
    assert host_processes_with(token) == []


def test_signals_to_parent_are_contained(pool):
    code = "import os, signal\nfor pid in (os.getppid(), 1, -1):\n    try: os.kill(pid, signal.SIGKILL)\n    except OSError as e: print('refused', pid, e.errno)\n"
    result = run(pool, code)
    assert result.status in ("passed", "killed"), result
    assert_still_healthy(pool)


def test_file_size_limit(pool):
    result = run(pool, "open('big.bin', 'wb').write(b'x' * 4 * 2**20)\nprint('WROTE')")
    assert result.status != "passed" and "WROTE" not in result.stdout, result


def test_no_state_leaks_between_jobs(pool):
    plant = (
        "import os, subprocess\n"
        "open('left.txt', 'w').write('x')\n"
        "for p in ('/dev/shm/left', os.environ['HOME'] + '/../left'):\n"
        "    try: open(p, 'w').write('x')\n"
        "    except OSError: pass\n"
        "subprocess.Popen(['sleep', '30'], start_new_session=True)\n"
        "print(os.getcwd())\n"
    )
    first = run(pool, plant)
    assert first.status == "passed", first
    look = (
        "import os\n"
        f"print(os.path.exists({first.stdout.strip()!r}), os.path.exists('/dev/shm/left'), os.listdir('/tmp'))\n"
        "print([open(f'/proc/{p}/cmdline').read() for p in os.listdir('/proc') if p.isdigit()])\n"
    )
    second = run(pool, look)
    assert second.status == "passed", second
    assert "sleep" not in second.stdout and "True" not in second.stdout.splitlines()[0], second.stdout


def test_process_backend_warns_and_keeps_rlimits(capsys):
    with open_sandbox("process", slots=1, ceiling=TIGHT) as sandbox:
        assert run(sandbox, "print('ok')").stdout == "ok\n"
        assert run(sandbox, "x = bytearray(1024 * 2**20)").status == "memory"
    assert "WITHOUT isolation" in capsys.readouterr().err


def test_bwrap_slot_gets_its_own_cgroup():
    if os.geteuid() != 0:
        pytest.skip("cgroups need root here")
    with open_sandbox("bwrap", slots=1, ceiling=TIGHT) as sandbox:
        assert run(sandbox, "print(1)").status == "passed"
        groups = list(Path("/sys/fs/cgroup").glob(f"**/synthgen/{os.getpid()}-{sandbox.slots[0].index}/pids.max"))
        assert groups and groups[0].read_text().strip() == str(TIGHT.processes + 16)
        assert (groups[0].parent / "cgroup.procs").read_text().split(), "the agent runs inside its cgroup"
    assert not groups[0].parent.exists(), "removed when the pool closes"


def test_cli_prints_the_result_as_json(tmp_path):
    from conftest import synthgen_cli

    (tmp_path / "solution.py").write_text("def double(x):\n    return 2 * x\n")
    (tmp_path / "tests.py").write_text("def test_double():\n    assert double(3) == 7\n")
    done = synthgen_cli("sandbox", "exec", str(tmp_path / "solution.py"), "--tests", str(tmp_path / "tests.py"), "--timeout", "5")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "failed" and result["tests"][0]["name"] == "test_double"
    missing = synthgen_cli("sandbox", "exec", str(tmp_path / "nope.py"))
    assert missing.returncode == 1 and "nope.py: no such file" in missing.stderr and "Traceback" not in missing.stderr


def test_tests_that_redefine_the_solution_test_the_solution(pool):
    """A generated tests file often carries its own copy of the function: it must not mask the solution's."""
    tests = "def add(a, b):\n    return a + b\n\nfrom solution import add\n\ndef test_add():\n    assert add(1, 2) == 3\n"
    result = pool.run(Job.with_tests("def add(a, b):\n    return a - b\n", tests))
    assert result.status == "failed" and result.failed_tests == ["test_add"], result


def test_pool_survives_its_agent_dying(pool):
    assert_still_healthy(pool)
    channel = pool.slots[0].channel
    if pool.backend == "docker":
        channel.container.kill()
    else:
        os.killpg(channel.process.pid, 9)
    assert_still_healthy(pool)
    assert pool.slots[0].channel is not channel, "a fresh agent took over"


def test_docker_containers_of_a_killed_owner_are_removed():
    options = backend_options("docker")
    from synthgen.engine.sandbox.docker import LABEL, engine

    client = engine()
    finished = subprocess.Popen(["true"])
    finished.wait()
    dead = finished.pid  # a pid that no longer runs
    orphan = client.containers.create(options["image"], command=["sleep", "60"], labels={LABEL: str(dead)})
    with open_sandbox("docker", slots=1, ceiling=TIGHT, **options):
        remaining = [c.id for c in client.containers.list(all=True, filters={"label": LABEL})]
    assert orphan.id not in remaining
