"""The event listener against a real PostgreSQL: each time its connection is
established, again after it was lost, watchers get a `resync` before any later event."""

import asyncio

import psycopg
import pytest
from jobsched_scheduler.events import EventHub, JobEvent, Watcher
from jobsched_scheduler.messages import event_message

pytestmark = pytest.mark.timeout(60)


async def next_event(watcher: Watcher) -> JobEvent:
    return await asyncio.wait_for(watcher.queue.get(), 15)


async def kill_listener(url: str) -> int:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE query LIKE 'LISTEN %%' AND pid <> pg_backend_pid()"
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 0


async def insert_job(url: str, name: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("INSERT INTO jobs (name, command) VALUES (%s, 'true')", (name,))


def test_watchers_are_told_to_resync_when_the_listener_reconnects(database_url: str) -> None:
    async def scenario() -> None:
        woken: list[bool] = []
        hub = EventHub(database_url, lambda: woken.append(True))
        watcher = hub.subscribe()
        stop = asyncio.Event()
        listening = asyncio.create_task(hub.run(stop))
        first = await next_event(watcher)
        assert first.resync and first.job_id == 0
        assert event_message(first).resync
        await insert_job(database_url, "before")
        assert not (await next_event(watcher)).resync
        woken.clear()
        assert await kill_listener(database_url) == 1
        again = await next_event(watcher)
        assert again.resync and woken  # dispatch looks at the table again too
        await insert_job(database_url, "after")
        after = await next_event(watcher)
        assert (after.resync, after.status) == (False, "queued")
        stop.set()
        await asyncio.wait_for(listening, 5)

    asyncio.run(scenario())
