"""`linkmeter worker --processes N`'s supervisor, with small fake workers (``python -c`` scripts) so that it runs
fast: a worker that dies is restarted after its backoff while the others keep running, signals are passed on
as received (a terminal's Ctrl+C reaches each worker once), status 2 stops everything with status 2, a worker
crashing again and again makes it give up, a kill -9'd supervisor takes its workers with it; and what each
worker is started with (node name, metrics port, options), `--processes` on the command line, `auto`."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from linkmeter.cli import main
from linkmeter.web.jobs import supervisor
from linkmeter.web.jobs.supervisor import (
    SUPERVISOR_ENV,
    available_cpus,
    child_environment,
    node_name,
    shown_name,
    worker_specs,
)
from tests.waiting import wait_until

WAIT = 30.0  # seconds any one expected line may take (the machine may be busy)

# The supervisor in a process of its own (it handles signals in its main thread), fake workers as children.
DRIVER = """
import json, os, sys
from linkmeter.web.jobs.supervisor import Backoff, ChildSpec, Supervisor, child_environment
config = json.loads(sys.argv[1])
specs = [ChildSpec(n + 1, (sys.executable, "-c", script), child_environment(os.environ, n + 1, os.getpid()),
                   f"fake-{n + 1}") for n, script in enumerate(config["scripts"])]
sys.exit(Supervisor(specs, backoff=Backoff(**config["backoff"])).run())
"""

PRELUDE = """
import os, signal, sys, time
def say(message):
    os.write(2, f"child {os.environ.get('LINKMETER_METRICS_PORT', '?')}: {message}\\n".encode())  # one line, whole
"""

# A worker: says it is ready, reports every signal it gets, stops `LINGER` s after the `STOP_AFTER`th one.
SERVE = PRELUDE + """
received = []
def note(signum, frame):
    received.append(signum)
    say(f"got {signal.Signals(signum).name}")
for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
    signal.signal(signum, note)
say("ready")
while len(received) < {stop_after}:
    time.sleep(0.02)
time.sleep({linger})
sys.exit(0)
"""


def serve(*, stop_after: int = 1, linger: float = 0.0) -> str:
    return SERVE.replace("{stop_after}", str(stop_after)).replace("{linger}", str(linger))


def exits(status: int, *, after: float = 0.0, message: str = "") -> str:
    said = f"say({message!r}); " if message else ""
    return PRELUDE + f"say('ready'); {said}time.sleep({after}); sys.exit({status})"


class Supervised:
    """The supervisor process: everything it and its workers print (one stream), its workers' pids."""

    def __init__(self, scripts: list[str], *, metrics_port: int, **backoff: float) -> None:
        env = {**os.environ, "LINKMETER_METRICS_PORT": str(metrics_port)}  # tells the workers apart: 1 -> port
        self.base_port = metrics_port
        self.popen = subprocess.Popen(
            [sys.executable, "-c", DRIVER, json.dumps({"scripts": scripts, "backoff": backoff})], env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self.lines: list[str] = []
        self._buffer = b""

    def port(self, index: int) -> int:
        return self.base_port + index - 1

    def until(self, pattern: str, count: int = 1, timeout: float = WAIT) -> list[re.Match[str]]:
        """The lines matching ``pattern``, once there are at least ``count`` of them."""
        regex = re.compile(pattern)
        give_up = time.monotonic() + timeout
        while True:
            found = [match for line in self.lines if (match := regex.search(line))]
            if len(found) >= count:
                return found
            left = give_up - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(f"not {count} line(s) matching {pattern!r} within {timeout:g}s:\n"
                                     + "\n".join(self.lines))

    def _read(self, timeout: float) -> bool:
        assert self.popen.stdout is not None
        ready, _, _ = select.select([self.popen.stdout], [], [], timeout)
        if not ready:
            return False
        chunk = os.read(self.popen.stdout.fileno(), 65536)
        if not chunk:
            return False
        self._buffer += chunk
        *complete, self._buffer = self._buffer.split(b"\n")
        self.lines += [line.decode(errors="replace") for line in complete]
        return True

    def finish(self, timeout: float = WAIT) -> int:
        """Its exit status, once it exited; reads the rest of its output."""
        code = self.popen.wait(timeout)
        while self._read(0.5):
            pass
        return code

    def count(self, pattern: str) -> int:
        return sum(1 for line in self.lines if re.search(pattern, line))

    def worker_pids(self) -> set[int]:
        return {int(match.group(1)) for line in self.lines
                if (match := re.search(r"^linkmeter worker: started .*pid (\d+)\)", line))}

    def signal(self, signum: int) -> None:
        os.kill(self.popen.pid, signum)


@pytest.fixture
def supervised() -> Iterator[list[Supervised]]:
    started: list[Supervised] = []
    yield started
    for run in started:
        for pid in {run.popen.pid, *run.worker_pids()}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            run.popen.wait(10)


def start(started: list[Supervised], scripts: list[str], *, port: int = 9400, **backoff: float) -> Supervised:
    run = Supervised(scripts, metrics_port=port, **backoff)
    started.append(run)
    return run


def started_pid(run: Supervised, index: int, nth: int = 1) -> int:
    """The pid of worker ``index`` the ``nth`` time it started."""
    return int(run.until(rf"started worker {index} \(fake-{index}, pid (\d+)\)", nth)[nth - 1].group(1))


def stopped_by_sigterm(run: Supervised, index: int) -> bool:
    """Worker ``index`` was sent SIGTERM: it says so, or it was killed by it (still starting up)."""
    return bool(run.count(rf"child {run.port(index)}: got SIGTERM") == 1 and run.count(
        rf"worker {index} \(fake-{index}, pid \d+\) exited with status 0$")) or bool(
        run.count(rf"worker {index} \(fake-{index}, pid \d+\) was killed by SIGTERM$"))


def all_ready(run: Supervised, workers: int = 2) -> None:
    run.until(r"child \d+: ready", workers)


# -- the supervisor -------------------------------------------------------------------------------------------


def test_a_worker_killed_is_restarted_after_its_backoff_while_the_others_keep_running(
        supervised: list[Supervised]) -> None:
    run = start(supervised, [serve(), serve()], initial=0.5)
    first = started_pid(run, 1)
    second = started_pid(run, 2)
    all_ready(run)
    os.kill(first, signal.SIGKILL)
    killed_at = time.monotonic()
    run.until(rf"worker 1 \(fake-1, pid {first}\) was killed by SIGKILL after [\d.]+ s; restarting it in 0\.5 s")
    again = started_pid(run, 1, 2)
    assert time.monotonic() - killed_at >= 0.5
    assert again not in (first, second)
    run.until(rf"child {run.port(1)}: ready", 2)  # the same worker again: its metrics port, its name
    run.signal(signal.SIGTERM)
    assert run.finish() == 0
    assert run.count(r"started worker 2 ") == 1  # the other one kept running all along
    assert run.count(rf"child {run.port(1)}: got SIGTERM") == 1 and run.count(rf"child {run.port(2)}: got SIGTERM") == 1


def test_each_sigterm_and_sigint_is_passed_on_to_every_worker_as_it_came(supervised: list[Supervised]) -> None:
    run = start(supervised, [serve(stop_after=2), serve(stop_after=2)])
    all_ready(run)
    run.signal(signal.SIGTERM)
    run.until(r"SIGTERM: passing it on to 2 worker\(s\) \(a warm shutdown: they finish their tasks\) and waiting "
              r"for them")
    run.until(r"child \d+: got SIGTERM", 2)
    run.signal(signal.SIGINT)  # Celery: a second signal (Ctrl+C twice) is the cold shutdown
    assert run.finish() == 0
    assert run.lines[-1] == "linkmeter worker: every worker has stopped; exit status 0"
    for index in (1, 2):
        got = [line for line in run.lines if line.startswith(f"child {run.port(index)}: got")]
        assert got == [f"child {run.port(index)}: got SIGTERM", f"child {run.port(index)}: got SIGINT"], run.lines
    assert run.count(r"started worker") == 2  # nothing restarted while stopping


def test_ctrl_c_in_a_terminal_reaches_each_worker_once_through_the_supervisor(supervised: list[Supervised]) -> None:
    run = start(supervised, [serve(linger=0.5), serve(linger=0.5)])
    all_ready(run)
    os.killpg(run.popen.pid, signal.SIGINT)  # what a terminal does: the whole foreground process group
    assert run.finish() == 0
    assert run.count(rf"child {run.port(1)}: got SIGINT") == 1 and run.count(rf"child {run.port(2)}: got SIGINT") == 1


def test_a_worker_exiting_with_status_2_stops_them_all_with_status_2(supervised: list[Supervised]) -> None:
    run = start(supervised, [exits(2, after=0.5, message="linkmeter worker: LINKMETER_X is bad"), serve()])
    assert run.finish() == 2
    text = "\n".join(run.lines)
    assert "linkmeter worker: LINKMETER_X is bad" in text
    assert re.search(r"worker 1 \(fake-1, pid \d+\) exited with status 2: a setting is missing or bad \(its message "
                     r"is above\); stopping the 1 other worker\(s\)", text), text
    assert stopped_by_sigterm(run, 2)
    assert run.count(r"started worker 1 ") == 1 and "restarting" not in text


def test_a_worker_crashing_again_and_again_right_after_its_start_makes_it_give_up_with_status_1(
        supervised: list[Supervised]) -> None:
    run = start(supervised, [exits(3), serve()], initial=0.05, max_fast_crashes=3)
    assert run.finish() == 1
    run.until(r"worker 1 \(fake-1, pid \d+\) exited with status 3 after [\d.]+ s; restarting it in 0\.05 s")
    run.until(r"worker 1 \(fake-1, pid \d+\) exited with status 3 after [\d.]+ s; restarting it in 0\.1 s")
    run.until(r"worker 1 \(fake-1, pid \d+\) exited with status 3 after [\d.]+ s: 3 crashes in a row, each within "
               r"60 s of its start; giving up; stopping the 1 other worker\(s\)")
    assert run.count(r"started worker 1 ") == 3 and stopped_by_sigterm(run, 2)


def test_a_worker_that_ran_a_while_before_it_crashed_starts_its_count_again(supervised: list[Supervised]) -> None:
    run = start(supervised, [exits(3, after=0.3), serve()], initial=0.05, stable_after=0.2, max_fast_crashes=2)
    # each ran longer than stable_after: always the first delay, never giving up
    run.until(r"worker 1 \(fake-1, pid \d+\) exited with status 3 after [\d.]+ s; restarting it in 0\.05 s", 3)
    run.signal(signal.SIGTERM)
    assert run.finish() == 0
    assert "giving up" not in "\n".join(run.lines)


def test_a_signal_during_a_backoff_stops_at_once_without_restarting(supervised: list[Supervised]) -> None:
    run = start(supervised, [exits(3), serve()], initial=20)
    run.until(r"worker 1 \(fake-1, pid \d+\) exited with status 3 after [\d.]+ s; restarting it in 20 s")
    asked = time.monotonic()
    run.signal(signal.SIGTERM)
    assert run.finish() == 0
    assert time.monotonic() - asked < 15 and run.count(r"started worker 1 ") == 1


def test_workers_that_stop_by_themselves_with_status_0_are_not_restarted(supervised: list[Supervised]) -> None:
    run = start(supervised, [exits(0, after=0.2), exits(0, after=0.4)], initial=0.05)
    assert run.finish() == 0
    assert run.count(r"exited with status 0 \(asked to stop, e.g. by `celery control shutdown`\); not restarting "
                     r"it") == 2
    assert run.count(r"started worker") == 2


def test_a_worker_that_does_not_stop_cleanly_makes_the_supervisor_exit_1(supervised: list[Supervised]) -> None:
    stubborn = PRELUDE + "signal.signal(signal.SIGTERM, lambda *a: sys.exit(5)); say('ready'); time.sleep(60)"
    run = start(supervised, [stubborn, serve()])
    all_ready(run)
    run.signal(signal.SIGTERM)
    assert run.finish() == 1
    run.until(r"worker 1 \(fake-1, pid \d+\) exited with status 5")


def test_workers_of_a_killed_supervisor_get_sigterm_and_stop(supervised: list[Supervised]) -> None:
    follow = PRELUDE + ("from linkmeter.web.jobs.supervisor import follow_supervisor\n"
                        "assert follow_supervisor()\n") + serve()
    run = start(supervised, [follow, follow])
    all_ready(run)
    run.signal(signal.SIGKILL)  # no chance to pass anything on: the kernel tells the workers
    run.until(r"child \d+: got SIGTERM", 2)
    for pid in run.worker_pids():
        wait_until(functools.partial(_gone, pid), WAIT, message=f"worker {pid} to stop")


def _gone(pid: int) -> bool:
    return not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1][:1] != "Z"  # a zombie waiting for its new parent is gone too
    except FileNotFoundError:
        return False


def test_a_worker_whose_supervisor_is_gone_does_not_start(monkeypatch: pytest.MonkeyPatch) -> None:
    assert supervisor.follow_supervisor({}) is True  # not supervised: nothing to do
    assert supervisor.follow_supervisor({SUPERVISOR_ENV: str(os.getppid())}) is True
    assert supervisor.follow_supervisor({SUPERVISOR_ENV: str(os.getppid() + 100000)}) is False


# -- what each worker is started with ---------------------------------------------------------------------------


def test_each_worker_has_its_own_node_name_kept_across_restarts() -> None:
    assert [node_name(None, n, 4242) for n in (1, 2)] == ["linkmeter-4242-1@%h", "linkmeter-4242-2@%h"]
    assert node_name("linkmeter-9101@%H", 3, 1) == "linkmeter-9101-3@%H"
    assert node_name("eu-west@host1.example.org", 2, 1) == "eu-west-2@host1.example.org"
    assert node_name("plain", 1, 1) == "plain-1"
    host = socket.gethostname()
    assert shown_name("w-1@%h") == f"w-1@{host}" and shown_name("w-1@%n") == f"w-1@{host.split('.')[0]}"


def test_each_worker_serves_its_metrics_on_its_own_port() -> None:
    assert [child_environment({"LINKMETER_METRICS_PORT": "9101"}, n, 7)["LINKMETER_METRICS_PORT"]
            for n in (1, 2, 3)] == ["9101", "9102", "9103"]
    assert child_environment({"LINKMETER_METRICS_PORT": "0"}, 2, 7)["LINKMETER_METRICS_PORT"] == "0"  # any free
    assert child_environment({"LINKMETER_METRICS_PORT": "x"}, 2, 7)["LINKMETER_METRICS_PORT"] == "x"  # refused there
    env = child_environment({"OTHER": "1"}, 2, 7)
    assert env == {"OTHER": "1", SUPERVISOR_ENV: "7"}


def test_each_worker_is_a_fresh_linkmeter_worker_with_the_same_options_but_processes() -> None:
    specs = worker_specs(2, concurrency=5, queues="a,b", loglevel="warning", emulator="http://127.0.0.1:1",
                         hostname="w@h", environ={"LINKMETER_METRICS_PORT": "9200"}, supervisor_pid=11)
    assert [spec.index for spec in specs] == [1, 2] and [spec.name for spec in specs] == ["w-1@h", "w-2@h"]
    argv = list(specs[1].argv)
    assert argv[:4] == [sys.executable, "-m", "linkmeter", "worker"] and "--processes" not in argv
    context = main.commands["worker"].make_context("worker", argv[4:])
    assert context.params == {"concurrency": 5, "processes": 1, "queues": "a,b", "loglevel": "warning",
                              "emulator": "http://127.0.0.1:1", "hostname": "w-2@h"}
    assert specs[1].env == {"LINKMETER_METRICS_PORT": "9201", SUPERVISOR_ENV: "11"}
    bare = worker_specs(1, concurrency=8, queues=None, loglevel="info", emulator=None, hostname=None, environ={},
                        supervisor_pid=3)[0]
    assert "--queues" not in bare.argv and "--emulator" not in bare.argv and bare.name == "linkmeter-3-1@%h"


# -- the command line -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "cpus", "supervised_count"), [
    ([], 4, None), (["--processes", "1"], 4, None), (["--processes", "3"], 1, 3),
    (["--processes", "auto"], 4, 4), (["--processes", "0"], 2, 2), (["--processes", "AUTO"], 1, None),
])
def test_processes_picks_the_supervisor_or_todays_single_worker(
        monkeypatch: pytest.MonkeyPatch, given: list[str], cpus: int, supervised_count: int | None) -> None:
    calls: list[tuple[str, Any]] = []
    monkeypatch.setattr(supervisor, "available_cpus", lambda: cpus)
    monkeypatch.setattr(supervisor, "run_supervisor", lambda count, **options: calls.append(("supervise",
                                                                                             (count, options))) or 0)
    from linkmeter.web.jobs import commands

    monkeypatch.setattr(commands, "run_worker", lambda **options: calls.append(("worker", options)) or 0)
    with pytest.raises(SystemExit) as exited:
        main(["worker", "--hostname", "n@h", "-c", "3", *given], standalone_mode=False)
    assert exited.value.code == 0
    options = {"concurrency": 3, "queues": None, "loglevel": "info", "emulator": None, "hostname": "n@h"}
    assert calls == ([("worker", options)] if supervised_count is None else
                     [("supervise", (supervised_count, options))])


@pytest.mark.parametrize("value", ["x", "-1", "257", "1.5"])
def test_processes_refuses_what_is_not_a_count_or_auto(value: str) -> None:
    with pytest.raises(click.BadParameter):
        main.commands["worker"].make_context("worker", ["--processes", value])


def test_the_supervising_command_loads_neither_django_nor_celery() -> None:
    code = """
import sys
from linkmeter.web.jobs import supervisor
supervisor.run_supervisor = lambda count, **options: print(count, options["hostname"]) or 0
from linkmeter.cli import main
try:
    main(["worker", "--processes", "2", "--hostname", "n@h"], standalone_mode=False)
except SystemExit as exc:
    print("exit", exc.code)
print(sorted({name.split(".")[0] for name in sys.modules} & {"django", "celery", "kombu", "billiard"}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.splitlines() == ["2 n@h", "exit 0", "[]"], done.stderr


def test_auto_is_the_cpus_this_process_may_use_capped_by_its_cgroup_quota(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    proc = tmp_path / "cgroup"
    root = tmp_path / "fs"
    (root / "system.slice" / "linkmeter-worker.service").mkdir(parents=True)
    proc.write_text("0::/system.slice/linkmeter-worker.service\n")
    assert available_cpus(cgroup_root=root, proc_cgroup=proc) == affinity  # no quota anywhere
    (root / "system.slice" / "linkmeter-worker.service" / "cpu.max").write_text("max 100000\n")
    assert available_cpus(cgroup_root=root, proc_cgroup=proc) == affinity
    (root / "system.slice" / "cpu.max").write_text("50000 100000\n")  # half a CPU on an ancestor: still one
    assert available_cpus(cgroup_root=root, proc_cgroup=proc) == 1
    assert available_cpus(cgroup_root=root, proc_cgroup=tmp_path / "missing") == affinity  # no cgroup v2
    if affinity >= 2:
        (root / "system.slice" / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs: 2 processes
        assert available_cpus(cgroup_root=root, proc_cgroup=proc) == 2
