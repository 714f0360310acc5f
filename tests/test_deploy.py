"""deploy/: the compose file, the Procfile and the systemd units agree with the `linkmeter` command line and
the settings the code reads (no Docker or systemd needed to check that)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from linkmeter.cli import main
from linkmeter.providers.registry import PROVIDER_CLASSES

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
SRC = Path(__file__).resolve().parents[1] / "src" / "linkmeter"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
BACKING = {"DATABASE_URL", "LINKMETER_BROKER_URL", "LINKMETER_REDIS_URL", "LINKMETER_SECRET_KEY"}
HARDENING = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes", "ProtectHome": "yes",
             "Restart": "on-failure", "User": "linkmeter", "EnvironmentFile": "/etc/linkmeter/env"}


def parse_command(args: list[str]) -> click.Context:
    """The context `linkmeter ARGS...` would run with; fails on an unknown subcommand, option or bad value."""
    assert args[0] == "linkmeter" or Path(args[0]).name == "linkmeter", args
    name, *rest = args[1:]
    command = main.commands.get(name)
    assert command is not None, f"`linkmeter {name}` does not exist (known: {', '.join(sorted(main.commands))})"
    return command.make_context(name, rest)


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit: section -> key -> every value given (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_every_compose_service_command_is_a_linkmeter_command_line_that_parses() -> None:
    services = compose()["services"]
    assert {"postgres", "rabbitmq", "redis", "web", "worker", "beat", "migrate"} <= set(services)
    commands = {name: service["command"] for name, service in services.items()
                if service.get("command", [""])[0] == "linkmeter"}
    assert set(commands) == {"web", "worker", "beat", "migrate"}
    assert {name: parse_command(args).info_name for name, args in commands.items()} == {
        "web": "serve", "worker": "worker", "beat": "beat", "migrate": "migrate"}
    assert parse_command(commands["web"]).params["host"] == "0.0.0.0"


def test_compose_services_have_the_backing_services_healthchecks_and_a_scalable_worker() -> None:
    services = compose()["services"]
    for name in ("web", "worker", "beat", "migrate"):
        assert set(services[name]["environment"]) >= BACKING, name
        for needed in services[name].get("depends_on", {}):
            assert needed in services, (name, needed)
    for name in ("postgres", "rabbitmq", "redis", "web", "worker"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith(".") or source in compose()["volumes"], (name, volume)
    assert (DEPLOY / services["web"]["build"]["dockerfile"].removeprefix("deploy/")).exists()


def test_the_metrics_ports_agree_between_commands_healthchecks_and_prometheus() -> None:
    services = compose()["services"]
    web_port = parse_command(services["web"]["command"]).params["port"]
    worker_port = int(services["worker"]["environment"]["LINKMETER_METRICS_PORT"])
    # one worker process per replica: its one metrics port is the one Prometheus finds for each replica
    assert parse_command(services["worker"]["command"]).params["processes"] == 1
    assert f":{web_port}/metrics" in " ".join(services["web"]["healthcheck"]["test"])
    assert f":{worker_port}/metrics" in " ".join(services["worker"]["healthcheck"]["test"])
    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert jobs["linkmeter-web"]["static_configs"][0]["targets"] == [f"web:{web_port}"]
    assert jobs["linkmeter-worker"]["dns_sd_configs"][0] == {"names": ["worker"], "type": "A", "port": worker_port}


def test_the_procfile_runs_web_worker_beat_and_migrates_on_release() -> None:
    entries = dict(line.split(":", 1) for line in (DEPLOY / "Procfile").read_text().splitlines() if line.strip())
    assert set(entries) == {"release", "web", "worker", "beat"}
    parsed = {name: parse_command([arg.replace("$PORT", "5000") for arg in shlex.split(command)])
              for name, command in entries.items()}
    assert {name: context.info_name for name, context in parsed.items()} == {
        "release": "migrate", "web": "serve", "worker": "worker", "beat": "beat"}
    assert parsed["web"].params["port"] == 5000 and parsed["web"].params["host"] == "0.0.0.0"
    assert parsed["worker"].params["processes"] == 0  # auto: one worker process per CPU of the dyno


@pytest.mark.parametrize("path", UNITS, ids=[path.name for path in UNITS])
def test_each_systemd_unit_starts_a_linkmeter_command_hardened_and_restarting(path: Path) -> None:
    service = unit(path)["Service"]
    (exec_start,) = service["ExecStart"]
    args = [arg.replace("%i", "9101").replace("%H", "host1") for arg in shlex.split(exec_start)]
    assert Path(args[0]).is_absolute()
    parse_command(args)
    for key, expected in HARDENING.items():
        assert service.get(key) == [expected], (path.name, key)
    assert "/var/lib/linkmeter" in " ".join(service["ReadWritePaths"])
    assert unit(path)["Install"]["WantedBy"] == ["multi-user.target"]


def test_the_units_are_web_beat_and_a_worker_template_whose_instance_is_its_first_metrics_port() -> None:
    assert [path.name for path in UNITS] == ["linkmeter-beat.service", "linkmeter-web.service",
                                             "linkmeter-worker@.service"]
    worker = unit(DEPLOY / "systemd" / "linkmeter-worker@.service")["Service"]
    assert worker["Environment"] == ["LINKMETER_METRICS_PORT=%i"]
    command = parse_command(shlex.split(worker["ExecStart"][0].replace("%i", "9101")))
    assert command.info_name == "worker"
    # one unit per host runs a worker process per CPU; SIGTERM reaches them once, through the supervisor
    assert command.params["processes"] == 0 and worker["KillMode"] == ["mixed"]
    assert command.params["hostname"] == "linkmeter-9101@%H"  # its workers: linkmeter-9101-1@host, -2, ...


def test_every_linkmeter_setting_named_in_deploy_is_one_the_code_reads() -> None:
    code = "\n".join(path.read_text() for path in SRC.rglob("*.py"))
    providers = "|".join(cls.name.upper() for cls in PROVIDER_CLASSES)
    per_provider = re.compile(rf"LINKMETER_({providers})_[A-Z_]+")
    named = {match for path in DEPLOY.rglob("*") if path.is_file()
             for match in re.findall(r"\bLINKMETER_[A-Z0-9_]*[A-Z0-9]", path.read_text())}
    assert {"LINKMETER_BROKER_URL", "LINKMETER_METRICS_PORT", "LINKMETER_LOG_FORMAT"} <= named
    unknown = {name for name in named if f'"{name}"' not in code and not per_provider.fullmatch(name)}
    assert not unknown, f"deploy/ sets variables no code reads: {sorted(unknown)}"
