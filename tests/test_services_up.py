"""scripts/services-up, which `make test` runs first: with every service up and the browser there it does
nothing; what it cannot provide it names on one line each, with the command that provides it, and fails.

It runs here with stand-ins: listening sockets of the test's own for the services that are up, stub commands
on PATH (apt-get, id, sudo, the services' start commands) that record their calls, and a browser path that
does not exist, so no real service or package is touched."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "services-up"
APT_FAILURE = "\n".join(["Reading package lists..."] * 30 + ["E: Unable to locate package chromium"])


@dataclass
class Machine:
    """The stand-in machine: ``stub(name, ...)`` puts a command on PATH, ``up`` holds listening sockets."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)
    up: list[socket.socket] = field(default_factory=list)

    @property
    def calls(self) -> list[str]:
        path = self.root / "calls"
        return path.read_text().splitlines() if path.exists() else []

    @property
    def log(self) -> Path:
        return self.root / "services-up.log"

    def stub(self, name: str, *, output: str = "", status: int = 0) -> None:
        script = self.root / "bin" / name
        script.write_text(f"#!/bin/sh\necho \"{name} $*\" >> {self.root / 'calls'}\n"
                          f"cat <<'EOF'\n{output}\nEOF\nexit {status}\n")
        script.chmod(0o755)

    def service_up(self, variable: str) -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        self.up.append(listener)
        self.env[variable] = str(listener.getsockname()[1])

    def run(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(SCRIPT)], env=self.env, capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[Machine]:
    """All three services up (the test's own sockets), Chromium missing, running as root, apt-get working."""
    (tmp_path / "bin").mkdir()
    it = Machine(tmp_path, env={
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "SERVICES_UP_CHROMIUM": str(tmp_path / "no-chromium"),
        "SERVICES_UP_LOG": str(tmp_path / "services-up.log"),
    })
    for variable in ("SERVICES_UP_POSTGRES_PORT", "SERVICES_UP_REDIS_PORT", "SERVICES_UP_RABBITMQ_PORT"):
        it.service_up(variable)
    it.stub("id", output="0")
    it.stub("sudo", status=1)  # no passwordless sudo
    it.stub("apt-get")
    for start in ("pg_ctlcluster", "redis-server", "rabbitmq-server"):
        it.stub(start, status=1)
    yield it
    for listener in it.up:
        listener.close()


def test_with_everything_there_it_does_nothing(machine: Machine) -> None:
    browser = machine.root / "chromium"
    browser.write_text("#!/bin/sh\n")
    browser.chmod(0o755)
    machine.env["SERVICES_UP_CHROMIUM"] = str(browser)
    done = machine.run()
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert machine.calls == []  # nothing started, nothing installed


def test_a_failing_apt_get_is_one_line_naming_the_install_command_and_its_log(machine: Machine) -> None:
    machine.stub("apt-get", output=APT_FAILURE, status=100)
    done = machine.run()
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "Chromium" in lines[0] and "apt has no chromium package" in lines[0], lines
    assert lines[0].endswith("install it with: sudo apt-get install chromium"), lines
    assert str(machine.log) in lines[0], lines
    assert "Reading package lists" not in done.stdout + done.stderr  # apt's page went to the log
    assert "E: Unable to locate package chromium" in machine.log.read_text()
    assert "apt-get update" in machine.calls


def test_without_root_it_installs_nothing_and_says_how(machine: Machine) -> None:
    machine.stub("id", output="1000")
    done = machine.run()
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"services-up: Chromium ({machine.env['SERVICES_UP_CHROMIUM']}, for the browser tests) is missing and "
        "installing it needs root; install it with: sudo apt-get install chromium"]
    assert not [call for call in machine.calls if call.startswith("apt-get")]


def test_a_service_that_does_not_start_is_one_line_more(machine: Machine) -> None:
    machine.stub("redis-server", output="# Could not create server TCP listening socket", status=1)
    machine.env["SERVICES_UP_REDIS_PORT"] = "1"  # nothing listens on port 1
    machine.stub("apt-get", output=APT_FAILURE, status=100)
    done = machine.run()
    assert done.returncode == 1
    redis, chromium = done.stderr.splitlines()  # one line per missing thing, nothing else
    assert redis.startswith("services-up: Redis does not answer on 127.0.0.1:1 and did not start"), redis
    assert f"(output in {machine.log})" in redis and "start it with: sudo redis-server --daemonize yes" in redis
    assert "install it with: sudo apt-get install chromium" in chromium
    assert "Could not create server TCP listening socket" in machine.log.read_text()
    assert not [call for call in machine.calls if call.startswith(("pg_ctlcluster", "rabbitmq-server"))]
