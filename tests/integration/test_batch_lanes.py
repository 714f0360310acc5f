"""A large batch is fed into the real RabbitMQ queue through its lanes: with no worker taking anything, a
400-URL batch holds only its lanes' first chunks in the queue, and a batch of the same priority submitted
after it is next in line, not behind the first one's whole batch."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from linkmeter.web.config.celery import CelerySettings, create_app
from linkmeter.web.jobs.celery_dispatch import publish_batch
from tests.integration.harness import rabbitmq_vhost
from tests.services import redis_database

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

LANES = 3


def waiting(app: Any, queue: str) -> list[tuple[list[int], int]]:
    """Every message waiting in ``queue``, in the order a worker would get them: (ids, priority)."""
    found = []
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        while (message := channel.basic_get(queue, no_ack=True)) is not None:
            args = json.loads(message.body)[0]  # Celery's message body: [args, kwargs, embed]
            found.append((args[0], message.properties["priority"]))
    return found


def test_a_large_batch_holds_only_its_lanes_in_the_queue_and_a_later_batch_is_next() -> None:
    queue = f"lanes-{secrets.token_hex(3)}"
    with rabbitmq_vhost() as broker:
        settings = CelerySettings(broker_url=broker, redis_url=redis_database(secrets.randbelow(15) + 1),
                                  queue=queue, chunk_size=10, batch_lanes=LANES)
        app = create_app(settings, main=False)
        with app.connection_for_write() as connection:
            app.conf.task_queues[0].bind(connection).declare()
        publish_batch(app, list(range(1, 401)), priority=4, batch_id=1, chunk_size=10, lanes=LANES)  # 40 chunks
        publish_batch(app, list(range(1001, 1021)), priority=4, batch_id=2, chunk_size=10, lanes=LANES)  # 2
        order = waiting(app, queue)
    assert [ids[0] for ids, _ in order] == [1, 11, 21, 1001, 1011]  # three of the first batch's 40, then the next
    assert {priority for _, priority in order} == {4}
