"""The database threads `linkmeter serve` installs for the API: work runs in a pool thread that keeps its
connection between calls, and gives it up when a call left it in a transaction."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.db import connection

from linkmeter.web import dbcalls


@pytest.fixture
def pool() -> Iterator[None]:
    dbcalls.install(threads=1)
    yield
    dbcalls.uninstall()


def _where() -> tuple[int, int | None, int]:
    """This thread, its connection's identity (None: not open) and the users it sees."""
    users = User.objects.count()
    return threading.get_ident(), id(connection.connection) if connection.connection else None, users


@pytest.mark.django_db(transaction=True)
async def test_a_pool_thread_keeps_its_connection_between_calls(pool: None) -> None:
    await dbcalls.run(User.objects.create_user, "ada")
    first = await dbcalls.run(_where)
    second = await dbcalls.run(_where)
    assert first[0] != threading.get_ident(), "the work ran off the event loop"
    assert first[0] == second[0] and first[1] is not None and first[1] == second[1]
    assert second[2] == 1


def _leave_a_transaction_open() -> None:
    connection.set_autocommit(False)


@pytest.mark.django_db(transaction=True)
async def test_a_connection_left_in_a_transaction_is_closed(pool: None) -> None:
    await dbcalls.run(_leave_a_transaction_open)
    assert (await dbcalls.run(lambda: connection.get_autocommit())) is True  # a new connection, autocommit again


@pytest.mark.django_db(transaction=True)
async def test_without_the_pool_the_work_runs_as_sync_to_async_runs_it() -> None:
    await dbcalls.run(User.objects.create_user, "bob")
    assert (await dbcalls.run(_where))[2] == 1
