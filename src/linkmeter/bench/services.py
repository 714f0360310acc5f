"""The real services a scaled-out bench mode uses: a throwaway PostgreSQL database, RabbitMQ, Redis."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672//"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


class ServiceUnavailable(RuntimeError):
    """A service the bench mode needs does not answer; the message says which and how it was reached."""


@dataclass(frozen=True, slots=True)
class Services:
    postgres: str  # a server URL (any database on it): the bench creates its own database there
    broker: str
    redis: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Services:
        """LINKMETER_BENCH_DATABASE_URL (else DATABASE_URL when it is PostgreSQL), LINKMETER_BROKER_URL and
        LINKMETER_REDIS_URL; each defaults to the service on its standard local port."""
        env = os.environ if environ is None else environ
        database = env.get("LINKMETER_BENCH_DATABASE_URL", "").strip()
        if not database and urlsplit(env.get("DATABASE_URL", "")).scheme.startswith("postgres"):
            database = env["DATABASE_URL"]
        return cls(postgres=database or DEFAULT_POSTGRES,
                   broker=env.get("LINKMETER_BROKER_URL", "").strip() or DEFAULT_BROKER,
                   redis=env.get("LINKMETER_REDIS_URL", "").strip() or DEFAULT_REDIS)


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` on the same server."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def conninfo(url: str) -> str:
    """A postgres:// URL as psycopg takes it (it knows postgresql:// and postgres://, not Django's variants)."""
    parts = urlsplit(url)
    scheme = "postgresql" if parts.scheme.startswith("postgres") else parts.scheme
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))


@contextlib.contextmanager
def temporary_database(server_url: str, prefix: str = "linkmeter_bench") -> Iterator[str]:
    """A new, empty database on the server of ``server_url``, dropped (connections and all) afterwards;
    yields its URL."""
    import psycopg

    name = f"{prefix}_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(conninfo(server_url), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise ServiceUnavailable(f"PostgreSQL at {_shown(server_url)} does not answer: {exc}") from exc
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server_url, name)
    finally:
        with psycopg.connect(conninfo(server_url), autocommit=True, connect_timeout=10) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def check_services(services: Services) -> None:
    """Raises ServiceUnavailable unless PostgreSQL, RabbitMQ and Redis all answer."""
    check_postgres(services.postgres)
    check_broker(services.broker)
    check_redis(services.redis)


def check_postgres(url: str) -> None:
    import psycopg

    try:
        with psycopg.connect(conninfo(url), connect_timeout=5) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        raise ServiceUnavailable(f"PostgreSQL at {_shown(url)} does not answer: {exc}") from exc


def check_broker(url: str) -> None:
    """Raises ServiceUnavailable unless RabbitMQ accepts a connection at ``url``."""
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:
        raise ServiceUnavailable(f"RabbitMQ at {_shown(url)} does not answer: {exc}") from exc


def check_redis(url: str) -> None:
    """Raises ServiceUnavailable unless Redis answers PING at ``url``."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
        with contextlib.closing(client):
            client.ping()
    except redis.RedisError as exc:
        raise ServiceUnavailable(f"Redis at {_shown(url)} does not answer: {exc}") from exc


def delete_queues(broker_url: str, names: list[str]) -> None:
    """Remove the bench's own queues (and whatever is left in them) from the broker."""
    from kombu import Connection

    with contextlib.suppress(Exception), Connection(broker_url, connect_timeout=5) as connection:
        channel: Any = connection.default_channel
        for name in names:
            with contextlib.suppress(Exception):
                channel.queue_delete(name)


def delete_redis_keys(url: str, pattern: str) -> None:
    """Remove the bench's own keys (a prefix pattern such as ``linkmeter-bench-ab12:*``)."""
    import redis

    with contextlib.suppress(redis.RedisError):
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
        with contextlib.closing(client):
            batch: list[bytes] = []
            for key in client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    client.delete(*batch)
                    batch = []
            if batch:
                client.delete(*batch)


def _shown(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
