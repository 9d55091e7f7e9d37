"""The live index through real hypercorn processes: every worker and host, and SIGTERM."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from contextlib import closing
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.servers import Server
from tests.servers import backend_of
from tests.servers import free_port
from tests.servers import hypercorn_command
from tests.servers import running
from tests.servers import server_env
from tests.servers import start
from tests.servers import stored_ids
from tests.servers import stored_titles
from tests.servers import wait_until_serving
from tests.visitors import HOSTS
from tests.visitors import RawStream
from tests.visitors import Visitor
from tests.visitors import loopback_client
from tests.visitors import register_and_log_in

WAIT = 15.0


async def open_streams(urls: list[str], count: int) -> list[RawStream]:
    """Open ``count`` streams spread over the URLs, each from a client address of its own."""
    return list(
        await asyncio.gather(
            *(RawStream.open(urls[n % len(urls)], loopback_client(n)) for n in range(count))
        )
    )


async def create_post(visitor: Visitor, url: str, title: str) -> None:
    """Create a post through a server (blocking client, off the loop)."""
    response = await asyncio.to_thread(
        visitor.submit, url + "/create", {"title": title, "body": "live"}
    )
    assert response.status_code == 302


def serve_command(config: Path) -> list[str]:
    """Return the serve command (what `make run` and the systemd unit run)."""
    return [sys.executable, "-m", "flaskr_async", "serve", "--config", str(config)]


@contextmanager
def served(tmp_path: Path, workers: int, worker_class: str) -> Iterator[Server]:
    """Start `python -m flaskr_async serve` with ``workers`` workers on a SQLite file."""
    port = free_port()
    config = tmp_path / "hypercorn.toml"
    config.write_text(
        f'bind = ["127.0.0.1:{port}"]\nworkers = {workers}\ngraceful_timeout = 10\n'
        f'worker_class = "{worker_class}"\n'
    )
    env = server_env(tmp_path / "live.sqlite", LIVE_POLL_INTERVAL="0.05")
    server = start(serve_command(config), env, port)
    try:
        wait_until_serving(server)
        yield server
    finally:
        server.kill()


@pytest.mark.parametrize("worker_class", ["asyncio", "uvloop"])
@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_ends_200_open_streams_at_once(
    tmp_path: Path, workers: int, worker_class: str
) -> None:
    with served(tmp_path, workers, worker_class) as server, ExitStack() as stack:
        visitor = Visitor()
        stack.callback(visitor.close)
        await asyncio.to_thread(register_and_log_in, visitor, server, server)
        streams = await open_streams([server.url], 200)
        titles = [f"before the stop {n}" for n in range(3)]
        for title in titles:
            await create_post(visitor, server.url, title)
        # Every stream hears every post, whichever worker wrote it and whichever serves it.
        await asyncio.gather(*(stream.until_created(len(titles)) for stream in streams))
        # Writes go on through the stop: each one acknowledged must be kept.
        writer = Visitor()
        stack.callback(writer.close)
        writer.session = visitor.session
        writing = asyncio.create_task(asyncio.to_thread(keep_writing, writer, server.url))
        await asyncio.sleep(0.3)
        stopping = time.monotonic()
        server.process.send_signal(15)
        ends = await asyncio.gather(*(stream.ended() for stream in streams))
        status = await asyncio.to_thread(server.process.wait, WAIT)
        stopped = time.monotonic() - stopping
        acknowledged = await writing
        for stream in streams:
            stream.close()
        output = server.output()
    assert status == 0
    assert acknowledged, "no write was acknowledged before the stop"
    print(
        f"SIGTERM with 200 streams, {workers} {worker_class} worker(s): streams ended within"
        f" {max(ends) - stopping:.2f} s, server exited in {stopped:.2f} s (graceful_timeout 10);"
        f" {len(acknowledged)} writes acknowledged around the stop, all kept"
    )
    assert max(ends) - stopping < 3
    assert stopped < 5
    # Each worker closed what it opened (two workers: the start-up check opened one more).
    assert output.count("Database closed") == output.count("Database opened") >= workers
    assert set(titles) | acknowledged <= set(await stored_titles(tmp_path / "live.sqlite"))


def keep_writing(visitor: Visitor, url: str) -> set[str]:
    """Create posts until the server stops answering; return the acknowledged titles."""
    acknowledged: set[str] = set()
    for n in range(10_000):
        title = f"during the stop {n}"
        try:
            response = visitor.submit(url + "/create", {"title": title, "body": ""})
        except httpx.TransportError:
            break  # the server stopped listening, or closed this connection
        if response.status_code == 302:
            acknowledged.add(title)
    return acknowledged


async def test_plain_hypercorn_with_two_workers(tmp_path: Path) -> None:
    port = free_port()
    env = server_env(
        tmp_path / "live.sqlite", LIVE_POLL_INTERVAL="0.05", LIVE_KEEPALIVE_INTERVAL="1"
    )
    # hypercorn closes a connection idle for --keep-alive seconds: a stream is never idle.
    command = hypercorn_command(port, "-w", "2", "--graceful-timeout", "2", "--keep-alive", "1")
    with running(command, env, port) as server:
        visitor = Visitor()
        try:
            await asyncio.to_thread(register_and_log_in, visitor, server, server)
            streams = await open_streams([server.url], 20)
            await asyncio.sleep(2.5)
            for stream in streams:
                await stream.until(b": keep-alive")
            await create_post(visitor, server.url, "to every worker")
            await asyncio.gather(*(stream.until_created(1) for stream in streams))
        finally:
            visitor.close()
        # Plain hypercorn tells the app of a stop only after its connections closed; the app's
        # connection class (flaskr_async/middleware/deadlines.py) hears hypercorn start stopping and
        # ends the streams then, on every Python (3.12+ waits in Server.wait_closed() for them).
        stopping = time.monotonic()
        server.process.send_signal(15)
        ends = await asyncio.gather(*(stream.ended() for stream in streams))
        try:
            assert server.process.wait(WAIT) == 0
        except BaseException:
            server.kill()
            print(server.output())
            raise
        for stream in streams:
            stream.close()
        assert max(ends) - stopping < 6
        # The first worker to exit closed its database; hypercorn.run then SIGTERMs the other
        # (the serve command's workers ignore that: see flaskr_async/serving/shutdown.py).
        assert server.output().count("Database closed") >= 1
    assert "to every worker" in await stored_titles(tmp_path / "live.sqlite")


@pytest.mark.postgresql_only
async def test_a_post_on_either_host_reaches_listeners_on_both(
    database_url: str, backend: str
) -> None:
    with ExitStack() as stack:
        env = server_env(database_url, TRUSTED_HOSTS=json.dumps(HOSTS))
        servers = []
        for host in HOSTS:
            port = free_port()
            command = hypercorn_command(port, host=host)
            servers.append(stack.enter_context(running(command, env, port, host)))
        a, b = servers
        visitor = Visitor()
        stack.callback(visitor.close)
        await asyncio.to_thread(register_and_log_in, visitor, a, b)
        streams = await open_streams([a.url, b.url], 20)
        await create_post(visitor, a.url, "written on A")
        await create_post(visitor, b.url, "written on B")
        await asyncio.gather(*(stream.until_created(2) for stream in streams))
        ids = await stored_ids(database_url)
        for stream in streams:
            assert stream.created_ids() == [ids["written on A"], ids["written on B"]]
            stream.close()


async def rolled_back_write(database: str, title: str) -> None:
    """Write a post and its event in a transaction held open a while, then roll it back."""
    insert_post = "INSERT INTO post (title, body, author_id) VALUES ($1, 'never', 1) RETURNING id"
    insert_event = "INSERT INTO post_event (post_id, kind) VALUES ($1, 'created')"
    if backend_of(database) == "postgresql":
        connection = await asyncpg.connect(database)
        try:
            transaction = connection.transaction()
            await transaction.start()
            post_id = await connection.fetchval(insert_post, title)
            await connection.execute(insert_event, post_id)
            await asyncio.sleep(0.5)  # every listener's connection is awake meanwhile
            await transaction.rollback()
        finally:
            await connection.close()
        return

    def write() -> None:
        with closing(sqlite3.connect(database, isolation_level=None)) as connection:
            connection.execute("BEGIN IMMEDIATE")
            cursor = connection.execute(insert_post.replace("$1", "?"), (title,))
            connection.execute(insert_event.replace("$1", "?"), (cursor.fetchone()[0],))
            time.sleep(0.5)  # ten polls of each worker pass meanwhile
            connection.rollback()

    await asyncio.to_thread(write)


async def test_a_rolled_back_write_is_never_announced(database_url: str) -> None:
    # SQLite: two workers of one hypercorn; PostgreSQL: two hosts. Either way, two processes.
    env = server_env(database_url, LIVE_POLL_INTERVAL="0.05", TRUSTED_HOSTS=json.dumps(HOSTS))
    with ExitStack() as stack:
        if backend_of(database_url) == "sqlite":
            port = free_port()
            server = stack.enter_context(running(hypercorn_command(port, "-w", "2"), env, port))
            a = b = server
        else:
            a, b = (
                stack.enter_context(running(hypercorn_command(port, host=host), env, port, host))
                for host, port in ((host, free_port()) for host in HOSTS)
            )
        visitor = Visitor()
        stack.callback(visitor.close)
        await asyncio.to_thread(register_and_log_in, visitor, a, b)
        streams = await open_streams([a.url, b.url], 20)
        await rolled_back_write(database_url, "rolled back")
        await create_post(visitor, a.url, "committed after it")
        await asyncio.gather(*(stream.until_created(1) for stream in streams))
        committed = (await stored_ids(database_url))["committed after it"]
        for stream in streams:
            assert stream.created_ids() == [committed]
            stream.close()
    assert await stored_titles(database_url) == ["committed after it"]
