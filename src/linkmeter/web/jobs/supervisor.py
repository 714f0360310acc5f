"""`linkmeter worker --processes N`: N independent worker processes under one supervising command.

A worker process uses at most one core (one event loop, the GIL), so a host runs one per core. The
supervisor starts each as a fresh ``python -m linkmeter worker ...`` (never forked from a process holding an
event loop or broker, database and Redis connections), with its own Celery node name (NAME-1, NAME-2, ...)
and, when LINKMETER_METRICS_PORT is set, its own metrics port (PORT, PORT+1, ...). It passes SIGTERM, SIGINT
and SIGQUIT on to every worker, as received (SIGTERM: warm shutdown, the tasks in progress finish), and
restarts a worker that dies unexpectedly after a backoff. A worker exiting with status 2 (a missing or bad
setting) stops them all with status 2; one crashing again and again right after its start stops them all
with status 1 (the service manager decides what next).

Standard library only, and nothing here touches Django, Celery or the network: the supervisor holds no
connection, no event loop and no thread.
"""

from __future__ import annotations

import contextlib
import math
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
SUPERVISOR_ENV = "LINKMETER_WORKER_SUPERVISOR"  # set in each worker: the supervisor's pid
METRICS_PORT_ENV = "LINKMETER_METRICS_PORT"
LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclass(frozen=True, slots=True)
class Backoff:
    """When a worker that died unexpectedly is started again."""

    initial: float = 1.0  # seconds before the first restart...
    maximum: float = 30.0  # ...doubling with each crash in a row, up to this
    stable_after: float = 60.0  # a worker that ran this long before it died starts the count again
    max_fast_crashes: int = 5  # this many crashes in a row, each sooner than stable_after: give up

    def delay(self, crashes: int) -> float:
        return float(min(self.maximum, self.initial * 2 ** max(crashes - 1, 0)))


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to start one worker: its number (1..N), command line, environment (None: ours) and node name."""

    index: int
    argv: tuple[str, ...]
    env: Mapping[str, str] | None
    name: str


@dataclass(slots=True)
class _Child:
    spec: ChildSpec
    popen: subprocess.Popen[bytes] | None = None
    pid: int = 0
    started_at: float = 0.0
    crashes: int = 0  # in a row, each within Backoff.stable_after of its start
    restart_at: float | None = None
    last_status: int | None = None  # its exit status once it is gone for good (None: fine, or pending)

    @property
    def label(self) -> str:
        return f"worker {self.spec.index} ({shown_name(self.spec.name)}, pid {self.pid})"


@dataclass
class Supervisor:
    """Runs ``specs`` until they have all stopped; ``run()`` returns the exit status. Call from the main
    thread (it handles signals)."""

    specs: Sequence[ChildSpec]
    backoff: Backoff = field(default_factory=Backoff)
    loglevel: str = "info"  # the lowest level of the supervisor's own lines (on stderr)
    _children: list[_Child] = field(init=False, default_factory=list)
    _stopping: signal.Signals | None = field(init=False, default=None)  # the first signal passed on
    _fatal: int | None = field(init=False, default=None)  # the exit status decided by a worker's failure

    def run(self) -> int:
        self._children = [_Child(spec) for spec in self.specs]
        with _SignalPipe((*FORWARDED, signal.SIGCHLD)) as signals:
            try:
                for child in self._children:
                    if self._stopping is None:  # (a worker that cannot even be started may give up)
                        self._spawn(child)
                while True:
                    self._reap()
                    if not any(child.popen for child in self._children) and (
                            self._stopping is not None or all(child.restart_at is None for child in self._children)):
                        status = self._result()
                        self.say("info", f"every worker has stopped; exit status {status}")
                        return status
                    for signum in signals.wait(self._timeout()):
                        if signum in FORWARDED:
                            self._stop(signal.Signals(signum), reason=None)
                    self._restart_due()
            finally:
                for child in self._children:  # only on an unexpected error: leave no worker behind
                    if child.popen is not None:
                        child.popen.send_signal(signal.SIGTERM)

    # -- events ------------------------------------------------------------------------------------------------

    def _spawn(self, child: _Child) -> None:
        child.restart_at = None
        child.started_at = time.monotonic()
        try:
            child.popen = subprocess.Popen(child.spec.argv, env=child.spec.env, stdin=subprocess.DEVNULL,
                                           process_group=0)  # a terminal's Ctrl+C reaches the workers once: from us
        except OSError as exc:
            child.pid = 0
            self._crashed(child, f"could not be started ({exc})", EXIT_FAILED)
            return
        child.pid = child.popen.pid
        self.say("info", f"started {child.label}")

    def _reap(self) -> None:
        for child in self._children:
            if child.popen is None or (code := child.popen.poll()) is None:
                continue
            child.popen = None
            what = describe_exit(code)
            if self._stopping is not None:
                child.last_status = code
                self.say("info", f"{child.label} {what}")
            elif code == EXIT_OK:
                child.last_status = code
                self.say("warning", f"{child.label} {what} (asked to stop, e.g. by `celery control shutdown`); "
                                     "not restarting it")
            elif code == EXIT_USAGE:
                child.last_status = code
                self._fatal = EXIT_USAGE
                self._stop(signal.SIGTERM, reason=f"{child.label} {what}: a setting is missing or bad (its message "
                                                  "is above)")
            else:
                self._crashed(child, what, code)

    def _crashed(self, child: _Child, what: str, code: int) -> None:
        ran = time.monotonic() - child.started_at
        child.crashes = 1 if ran >= self.backoff.stable_after else child.crashes + 1
        if child.crashes >= self.backoff.max_fast_crashes:
            child.last_status = code
            self._fatal = EXIT_FAILED
            self._stop(signal.SIGTERM, reason=f"{child.label} {what} after {ran:.1f} s: {child.crashes} crashes in "
                                              f"a row, each within {self.backoff.stable_after:g} s of its start; "
                                              "giving up")
            return
        delay = self.backoff.delay(child.crashes)
        child.restart_at = time.monotonic() + delay
        self.say("warning", f"{child.label} {what} after {ran:.1f} s; restarting it in {delay:g} s")

    def _restart_due(self) -> None:
        now = time.monotonic()
        for child in self._children:
            if self._stopping is None and child.restart_at is not None and child.restart_at <= now:
                self._spawn(child)

    def _stop(self, signum: signal.Signals, *, reason: str | None) -> None:
        """Pass ``signum`` on to every running worker (each time one arrives, as it came: a second SIGINT is
        Celery's cold shutdown) and restart none from now on. ``reason``: a worker's failure, not a signal."""
        running = [child for child in self._children if child.popen is not None]
        if self._stopping is None:
            self._stopping = signum
            for child in self._children:
                child.restart_at = None
            if reason is not None:
                self.say("error", f"{reason}; stopping the {len(running)} other worker(s)")
            else:
                how = "a cold shutdown" if signum == signal.SIGQUIT else "a warm shutdown: they finish their tasks"
                self.say("info", f"{signum.name}: passing it on to {len(running)} worker(s) ({how}) and waiting "
                                 "for them")
        else:
            self.say("info", f"{signum.name} while stopping: passing it on to {len(running)} worker(s)")
        for child in running:
            assert child.popen is not None
            child.popen.send_signal(signum)

    def _timeout(self) -> float | None:
        due = [child.restart_at for child in self._children if child.restart_at is not None]
        return max(0.0, min(due) - time.monotonic()) if due else None

    def _result(self) -> int:
        if self._fatal is not None:
            return self._fatal
        clean = {0, *(-int(signum) for signum in FORWARDED)}
        return EXIT_OK if all(c.last_status is None or c.last_status in clean for c in self._children) else EXIT_FAILED

    def say(self, level: str, message: str) -> None:
        if LEVELS[level] >= LEVELS.get(self.loglevel.lower(), LEVELS["info"]):
            sys.stderr.write(f"linkmeter worker: {message}\n")  # one write: lines from the workers do not split it
            sys.stderr.flush()


class _SignalPipe:
    """While entered, the given signals only write their number to a pipe (``signal.set_wakeup_fd``), which
    ``wait()`` reads: the supervisor reacts to them in its loop, never inside a handler."""

    def __init__(self, signums: Iterable[int]) -> None:
        self._signums = tuple(signums)

    def __enter__(self) -> _SignalPipe:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._old_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._old = {signum: signal.signal(signum, _noted) for signum in self._signums}
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._read, selectors.EVENT_READ)
        return self

    def wait(self, timeout: float | None) -> list[int]:
        """The signals that arrived, waiting up to ``timeout`` seconds (None: until one does)."""
        self._selector.select(timeout)
        received = b""
        while True:
            try:
                chunk = os.read(self._read, 512)
            except BlockingIOError:
                break
            if not chunk:
                break
            received += chunk
        return list(received)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        for signum, handler in self._old.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self._old_fd)
        self._selector.close()
        os.close(self._read)
        os.close(self._write)


def _noted(signum: int, frame: FrameType | None) -> None:
    """The Python-level handler: nothing (the wakeup pipe has the signal's number)."""


def shown_name(name: str) -> str:
    """A node name as Celery expands it (%h: this host's name, %n: its first label, %d: its domain)."""
    host = socket.gethostname()
    first, _, domain = host.partition(".")
    return name.replace("%h", host).replace("%n", first).replace("%d", domain)


def describe_exit(code: int) -> str:
    if code >= 0:
        return f"exited with status {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"


# -- `linkmeter worker --processes N` -------------------------------------------------------------------------


def node_name(hostname: str | None, index: int, supervisor_pid: int) -> str:
    """Worker ``index``'s Celery node name: the --hostname given with ``-index`` before its ``@``, or
    linkmeter-<supervisor pid>-<index>@%h (kept across restarts)."""
    if not hostname:
        return f"linkmeter-{supervisor_pid}-{index}@%h"
    name, at, host = hostname.partition("@")
    return f"{name}-{index}{at}{host}"


def child_environment(environ: Mapping[str, str], index: int, supervisor_pid: int) -> dict[str, str]:
    """Worker ``index``'s environment: ours, its metrics page at LINKMETER_METRICS_PORT + index - 1 (0, any
    free port, and values the worker will refuse are passed on as they are), and the supervisor's pid."""
    env = dict(environ)
    env[SUPERVISOR_ENV] = str(supervisor_pid)
    port = env.get(METRICS_PORT_ENV, "").strip()
    if port.isdigit() and int(port) > 0:
        env[METRICS_PORT_ENV] = str(int(port) + index - 1)
    return env


def worker_specs(processes: int, *, concurrency: int, queues: str | None, loglevel: str, emulator: str | None,
                 hostname: str | None, environ: Mapping[str, str] | None = None,
                 supervisor_pid: int | None = None) -> list[ChildSpec]:
    """The ``processes`` workers `linkmeter worker --processes N` starts: the same options but --processes."""
    pid = os.getpid() if supervisor_pid is None else supervisor_pid
    environ = os.environ if environ is None else environ
    specs = []
    for index in range(1, processes + 1):
        name = node_name(hostname, index, pid)
        argv = [sys.executable, "-m", "linkmeter", "worker", "--concurrency", str(concurrency), "--loglevel",
                loglevel, "--hostname", name]
        if queues:
            argv += ["--queues", queues]
        if emulator:
            argv += ["--emulator", emulator]
        specs.append(ChildSpec(index, tuple(argv), child_environment(environ, index, pid), name))
    return specs


def run_supervisor(processes: int, *, concurrency: int, queues: str | None, loglevel: str, emulator: str | None,
                   hostname: str | None) -> int:
    """`linkmeter worker --processes N` (N > 1): start the workers, supervise them, return the exit status."""
    specs = worker_specs(processes, concurrency=concurrency, queues=queues, loglevel=loglevel, emulator=emulator,
                         hostname=hostname)
    supervisor = Supervisor(specs, loglevel=loglevel)
    supervisor.say("info", f"supervising {processes} worker processes (pid {os.getpid()}); SIGTERM stops them "
                            "after their tasks in progress")
    return supervisor.run()


def available_cpus(*, cgroup_root: Path = Path("/sys/fs/cgroup"),
                   proc_cgroup: Path = Path("/proc/self/cgroup")) -> int:
    """The CPUs this process may use (`--processes auto`): its CPU affinity, capped by a cgroup v2 CPU quota
    (a container's --cpus, systemd's CPUQuota=) on this process's cgroup or an ancestor."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    try:
        relative = next(line[3:] for line in proc_cgroup.read_text().splitlines() if line.startswith("0::"))
    except (OSError, StopIteration):
        return max(count, 1)
    directory = (cgroup_root / relative.strip().lstrip("/")).resolve()
    root = cgroup_root.resolve()
    while directory == root or root in directory.parents:
        try:
            quota, _, period = (directory / "cpu.max").read_text().strip().partition(" ")
            if quota != "max" and float(period) > 0:
                count = min(count, math.ceil(float(quota) / float(period)))
        except (OSError, ValueError):
            pass
        if directory == root:
            break
        directory = directory.parent
    return max(count, 1)


def follow_supervisor(environ: Mapping[str, str] | None = None) -> bool:
    """In a worker started by the supervisor: have the kernel send this process SIGTERM (a warm shutdown)
    when the supervisor dies, even by SIGKILL (Linux), so no worker outlives it unseen. False when the
    supervisor is already gone (the worker should not start)."""
    expected = (os.environ if environ is None else environ).get(SUPERVISOR_ENV, "").strip()
    if not expected.isdigit():
        return True
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    return os.getppid() == int(expected)
