"""The Redis client for shared state, against real redis-server processes and hostile fakes.

What a caller of :class:`RedisClient` must be able to rely on:

1. every call gets its own reply, never another's: with 200 callers at once,
   and with random timeouts and cancellations among them (a property);
2. an error reply raises RedisError and keeps the connection; anything else
   that ends a call without its reply ends the connection;
3. with Redis stopped, killed or slow, a call loses at most its timeout; after
   a few failures the breaker fails calls at once, and the same client comes
   back by itself once Redis does;
4. a hostile server (garbage, a reply cut at any byte, a length of a
   terabyte, a line that never ends) ends in RedisUnavailable, at once, with
   bounded memory;
5. the password never shows in a repr or an error.

The parser and the breaker are pure, and are tested without sockets.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import traceback
import tracemalloc
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

import pytest
import uvloop
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from modelroute.router.state import resp
from modelroute.router.state.breaker import MAX_OPEN_FOR, Breaker, BreakerState
from modelroute.router.state.errors import ProtocolError, RedisError, RedisUnavailable
from modelroute.router.state.redis import RedisClient, Script, parse_url
from modelroute.router.state.resp import Parser, Reply, encode_command
from tests.router.redis_server import (
    RedisServer,
    encode_reply,
    fresh_redis_server,
    hostile_redis,
    redis_server,
    start_redis,
)

__all__ = ["fresh_redis_server", "redis_server"]  # fixtures, used by name

T = TypeVar("T")
MIB = 1024 * 1024
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}
SLACK = 0.25  # seconds a failing call may take beyond its timeout on a busy CI machine
PASSWORD = "s3cret-Pass-4711"


def run(scenario: Coroutine[Any, Any, T], loop: str = "asyncio", timeout: float = 20.0) -> T:
    """Run one scenario on a fresh event loop of the kind named, bounded."""

    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await scenario

    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        return runner.run(bounded())


async def until_answered(client: RedisClient, within: float = 5.0) -> None:
    """Call PING until Redis answers (through the breaker's trials)."""
    async with asyncio.timeout(within):
        while True:
            try:
                if await client.call("PING") == b"PONG":
                    return
            except RedisUnavailable:
                await asyncio.sleep(0.01)


def plain(value: Reply) -> object:
    """A reply with its errors as comparable tuples (RedisError compares by identity)."""
    if isinstance(value, RedisError):
        return ("error", value.message)
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def available(client: RedisClient) -> bool:
    """``client.available``, read anew (mypy would keep what an assert narrowed it to)."""
    return client.available


def depth(value: Reply) -> int:
    return 1 + max(map(depth, value), default=0) if isinstance(value, list) else 0


# --- the parser -------------------------------------------------------------------------

messages = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
leaves = (
    st.none()
    | st.integers(-(2**63), 2**63 - 1)
    | st.binary(max_size=40)
    | st.builds(lambda text: RedisError("ERR " + text), messages)
)
replies = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4), max_leaves=12).filter(
    lambda value: depth(value) <= resp.MAX_DEPTH
)


@settings(max_examples=150, deadline=None)
@given(st.lists(replies, min_size=1, max_size=4))
def test_replies_parse_the_same_split_at_any_byte(values: list[Reply]) -> None:
    data = b"".join(encode_reply(value) for value in values)
    expected = [plain(value) for value in values]
    assert plain(Parser().feed(data)) == expected
    for cut in range(len(data) + 1):
        parser = Parser()
        assert plain(parser.feed(data[:cut]) + parser.feed(data[cut:])) == expected
    parser = Parser()
    assert plain([reply for i in range(len(data)) for reply in parser.feed(data[i : i + 1])]) == (
        expected
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(replies, min_size=1, max_size=4), st.data())
def test_replies_parse_the_same_in_any_pieces(values: list[Reply], data: st.DataObject) -> None:
    wire = b"".join(encode_reply(value) for value in values)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    parser = Parser()
    parsed: list[Reply] = []
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        parsed += parser.feed(wire[start:end])
    assert plain(parsed) == [plain(value) for value in values]


def test_every_reply_type() -> None:
    wire = b"+OK\r\n-WRONGTYPE no\r\n:-9223372036854775808\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n"
    parsed = Parser().feed(wire)
    assert plain(parsed) == [b"OK", ("error", "WRONGTYPE no"), -(2**63), b"", None, None, []]
    error = parsed[1]
    assert isinstance(error, RedisError) and error.code == "WRONGTYPE"


def test_arrays_nest_eight_deep_and_no_deeper() -> None:
    assert Parser().feed(b"*1\r\n" * 8 + b":1\r\n") == [[[[[[[[[1]]]]]]]]]
    with pytest.raises(ProtocolError, match="nested deeper"):
        Parser().feed(b"*1\r\n" * 9 + b":1\r\n")


@pytest.mark.parametrize(
    "wire",
    [
        b"$999999999999\r\n",  # a terabyte announced: refused before a byte of it is kept
        b"$%d\r\n" % (resp.MAX_BULK_BYTES + 1),
        b"*%d\r\n" % (resp.MAX_ARRAY_LENGTH + 1),
        b"$-2\r\n",
        b"*-5\r\n",
        b":1_000\r\n",  # int() would take it
        b": 1\r\n",
        b":+1\r\n",
        b":\r\n",
        b":12345678901234567890\r\n",  # not a 64-bit integer
        b"$3\r\nabcd\r\n",  # longer than its length
        b"hello world\r\n",
        b"\r\n",
        b"_\r\n",  # RESP3 null
        b"#t\r\n",  # RESP3 boolean
        b"%1\r\n+a\r\n+b\r\n",  # RESP3 map
    ],
)
def test_malformed_replies_are_protocol_errors(wire: bytes) -> None:
    with pytest.raises(ProtocolError):
        Parser().feed(wire)


def test_bulk_and_array_at_their_bounds_are_accepted() -> None:
    assert Parser().feed(b"$%d\r\n" % resp.MAX_BULK_BYTES) == []  # waits for the bytes
    assert Parser().feed(b"*%d\r\n" % resp.MAX_ARRAY_LENGTH) == []


@pytest.mark.parametrize("before", [b"", b"+OK\r\n", b"*2\r\n:1\r\n"])
def test_a_line_without_end_fails_past_64_kib(before: bytes) -> None:
    parser = Parser()
    parser.feed(before)
    fed = 0
    with pytest.raises(ProtocolError, match="line"):
        for _ in range(64):
            parser.feed(b"+" + b"a" * 4095)
            fed += 4096
    assert fed <= resp.MAX_LINE_BYTES + 4096


def test_a_whole_reply_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resp, "MAX_REPLY_BYTES", 1000)
    parser = Parser()
    assert parser.feed(b"*3\r\n$400\r\n" + b"a" * 400 + b"\r\n") == []
    assert parser.feed(b"$400\r\n" + b"b" * 400 + b"\r\n") == []  # 820 bytes so far
    with pytest.raises(ProtocolError, match="larger"):
        parser.feed(b"$400\r\n" + b"c" * 200)
    # The bound is per reply: many replies in one piece are fine.
    assert Parser().feed((b"$900\r\n" + b"d" * 900 + b"\r\n") * 3) == [b"d" * 900] * 3


def test_commands_are_arrays_of_bulk_strings() -> None:
    assert encode_command(["SET", b"k\r\n", 5, -1.5, "\u00e9"]) == (
        b"*5\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$1\r\n5\r\n$4\r\n-1.5\r\n$2\r\n\xc3\xa9\r\n"
    )
    with pytest.raises(ValueError):
        encode_command([])
    with pytest.raises(TypeError):
        encode_command(["GET", None])  # type: ignore[list-item]


# --- the breaker --------------------------------------------------------------------------


def test_the_breaker_opens_after_failures_in_a_row() -> None:
    breaker = Breaker(failure_threshold=3, open_for=1.0)
    assert not breaker.failed(0.0) and not breaker.failed(0.0)
    assert not breaker.succeeded()  # an answer: the count starts over
    assert not breaker.failed(0.0) and not breaker.failed(0.0)
    assert breaker.failed(10.0)  # the third in a row
    assert not breaker.available and breaker.reopens_at == 11.0
    assert not breaker.allow(10.9)
    assert not breaker.failed(10.9)  # a call let through before it opened: no longer
    assert breaker.reopens_at == 11.0


def test_half_open_lets_one_trial_through() -> None:
    breaker = Breaker(failure_threshold=1, open_for=1.0)
    breaker.failed(0.0)
    assert breaker.allow(1.0)  # the trial
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow(1.0) and not breaker.allow(5.0)
    assert breaker.succeeded() and breaker.available and breaker.allow(5.0)


def test_a_failed_trial_doubles_the_wait_up_to_the_cap() -> None:
    breaker = Breaker(failure_threshold=1, open_for=1.0)
    now = 0.0
    breaker.failed(now)
    waits = []
    for _ in range(6):
        now = breaker.reopens_at
        assert breaker.allow(now)
        assert not breaker.failed(now)  # still open: no new transition
        waits.append(breaker.reopens_at - now)
    assert waits == [2.0, 4.0, 8.0, MAX_OPEN_FOR, MAX_OPEN_FOR, MAX_OPEN_FOR]
    assert breaker.allow(breaker.reopens_at) and breaker.succeeded()
    breaker.failed(100.0)
    assert breaker.reopens_at == 101.0  # an answer resets the wait


def test_a_cancelled_trial_lets_the_next_call_be_the_trial() -> None:
    breaker = Breaker(failure_threshold=1, open_for=1.0)
    breaker.failed(0.0)
    assert breaker.allow(1.0)
    breaker.abandoned(1.5)
    assert breaker.allow(1.5) and not breaker.allow(1.5)


# --- addresses and secrets -----------------------------------------------------------


def test_urls() -> None:
    address = parse_url("redis://localhost")
    assert (address.tls, address.host, address.port, address.db) == (False, "localhost", 6379, 0)
    address = parse_url("rediss://router:p%40ss@redis.internal:6380/2")
    assert (address.tls, address.port, address.db) == (True, 6380, 2)
    assert (address.username, address.password) == ("router", "p@ss")
    assert str(address) == "rediss://router@redis.internal:6380/2"
    address = parse_url("redis://:pw@[::1]:7000/")
    assert (address.host, address.username, address.password) == ("::1", None, "pw")
    assert str(address) == "redis://[::1]:7000/0"
    assert "pw" not in repr(address)


@pytest.mark.parametrize(
    "url",
    [
        "http://:s3cret@host",
        "redis://:s3cret@host/x",
        "redis://:s3cret@host/1?db=2",
        "redis://:s3cret@host:port/0",
        "redis://:s3cret@:6379",
    ],
)
def test_bad_urls_are_refused_without_repeating_them(url: str) -> None:
    with pytest.raises(ValueError) as caught:
        RedisClient(url)
    assert "s3cret" not in str(caught.value)


def test_arguments_override_the_url_and_the_password_stays_hidden() -> None:
    client = RedisClient("redis://alice:url-pw@h:1/3", username="bob", password=PASSWORD)
    assert (client.address.username, client.address.password) == ("bob", PASSWORD)
    assert repr(client) == "RedisClient('redis://bob@h:1/3', available=True)"
    assert PASSWORD not in repr(client) and PASSWORD not in str(client)
    with pytest.raises(ValueError, match="needs a password"):
        RedisClient("redis://h", username="bob")
    with pytest.raises(ValueError, match="rediss"):
        RedisClient("redis://h", ca_file="/ca.pem")


# --- against a real Redis -----------------------------------------------------------------


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[RedisClient]:
    """A client with a generous timeout: these tests are about answers, not time."""
    client = RedisClient(redis_server.url, timeout=2.0)
    yield client
    await client.close()


async def test_commands(client: RedisClient) -> None:
    assert await client.call("SET", "basic:k", "v") == b"OK"
    assert await client.call("GET", "basic:k") == b"v"
    assert await client.call("GET", "basic:missing") is None
    assert await client.call("DEL", "basic:n") in (0, 1)
    assert await client.call("INCRBY", "basic:n", 5) == 5
    assert await client.call("INCRBY", "basic:n", -7) == -2
    assert await client.call("INCRBYFLOAT", "basic:f", 1.25) == b"1.25"
    assert await client.call("EVAL", "return {1, 'two', {3}, false}", 0) == [1, b"two", [3], None]
    assert await client.call("ECHO", b"\x00\r\n\xff" * 1000) == b"\x00\r\n\xff" * 1000


async def test_an_error_reply_raises_and_keeps_the_connection(client: RedisClient) -> None:
    connection = await client.call("CLIENT", "ID")
    await client.call("SET", "error:k", "text")
    with pytest.raises(RedisError) as caught:
        await client.call("INCR", "error:k")
    assert caught.value.code == "ERR" and "not an integer" in caught.value.message
    with pytest.raises(RedisError, match="unknown command"):
        await client.call("NO-SUCH-COMMAND")
    assert await client.call("MULTI") == b"OK"
    await client.call("INCR", "error:k")
    await client.call("ECHO", "after")
    inside = await client.call("EXEC")
    assert isinstance(inside, list) and isinstance(inside[0], RedisError)
    assert inside[1] == b"after"  # an error inside an array is a value, not raised
    assert await client.call("CLIENT", "ID") == connection
    assert client.available


async def test_a_script_runs_by_sha_and_falls_back_after_a_flush(client: RedisClient) -> None:
    script = Script(client, "return redis.call('INCRBY', KEYS[1], ARGV[1])")
    await client.call("DEL", "script:n")
    await client.call("SCRIPT", "FLUSH")
    await client.call("CONFIG", "RESETSTAT")
    assert await script(keys=["script:n"], args=[2]) == 2  # NOSCRIPT, then EVAL
    assert await client.call("SCRIPT", "EXISTS", script.sha) == [1]
    assert await script(keys=["script:n"], args=[3]) == 5  # EVALSHA
    await client.call("SCRIPT", "FLUSH")  # as after a restart
    assert await script(keys=["script:n"], args=[4]) == 9
    stats = await client.call("INFO", "commandstats")
    assert isinstance(stats, bytes)
    assert b"cmdstat_eval:calls=2," in stats and b"cmdstat_evalsha:calls=3," in stats
    failing = Script(client, "return redis.error_reply('NOPE not today')")
    with pytest.raises(RedisError) as caught:
        await failing()
    assert caught.value.code == "NOPE"


async def test_a_cancelled_call_costs_the_calls_behind_it_nothing(client: RedisClient) -> None:
    """A client that goes away mid-call (its request task is cancelled) leaves its place
    in line: the calls written after it still get their own replies, on the same
    connection, and its reply is dropped."""
    assert await client.call("PING") == b"PONG"
    slow = asyncio.create_task(client.call("DEBUG", "SLEEP", "0.2", timeout=2.0))
    await asyncio.sleep(0.02)
    behind = [asyncio.create_task(client.call("ECHO", f"e{i}", timeout=2.0)) for i in range(5)]
    await asyncio.sleep(0.02)
    slow.cancel()
    assert await asyncio.gather(*behind) == [f"e{i}".encode() for i in range(5)]
    with pytest.raises(asyncio.CancelledError):
        await slow
    assert await client.call("ECHO", "after") == b"after"
    assert client.available


async def test_select_picks_the_database(redis_server: RedisServer, client: RedisClient) -> None:
    other = RedisClient(redis_server.url + "/3", timeout=2.0)
    try:
        await other.call("SET", "select:k", "in 3")
        assert await client.call("GET", "select:k") is None
        assert await other.call("GET", "select:k") == b"in 3"
    finally:
        await other.close()


@pytest.mark.parametrize("loop", LOOPS)
def test_200_callers_at_once_each_get_their_own_answer(
    redis_server: RedisServer, loop: str
) -> None:
    async def scenario() -> None:
        latencies: list[float] = []
        client = RedisClient(redis_server.url, timeout=2.0, on_latency=latencies.append)
        prefix = f"many:{loop}:{os.urandom(4).hex()}"
        connection = await client.call("CLIENT", "ID")

        async def one(i: int) -> tuple[Reply, Reply, Reply]:
            added = await client.call("INCRBY", f"{prefix}:{i}", i)
            got = await client.call("GET", f"{prefix}:{i}")
            echoed = await client.call("ECHO", f"caller {i} " + "x" * (i * 37))
            return added, got, echoed

        try:
            answers = await asyncio.gather(*(one(i) for i in range(200)))
            assert answers == [
                (i, str(i).encode(), f"caller {i} {'x' * (i * 37)}".encode()) for i in range(200)
            ]
            assert await client.call("CLIENT", "ID") == connection  # all on one connection
            assert len(latencies) == 602 and all(0 < seconds < 2.0 for seconds in latencies)
        finally:
            await client.close()

    run(scenario(), loop)


Plan = tuple[float, Literal["plain", "timeout", "cancel"], float, int]
plans = st.lists(
    st.tuples(
        st.floats(0, 0.003),  # when the call starts
        st.sampled_from(["plain", "timeout", "cancel"]),
        st.floats(0.00001, 0.003),  # its timeout, or when it is cancelled
        st.sampled_from([1, 100, 10_000, 300_000]),  # its payload's size
    ),
    min_size=1,
    max_size=50,
)


@pytest.mark.parametrize("loop", LOOPS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans=plans)
def test_timeouts_and_cancels_never_hand_a_reply_to_another_call(
    redis_server: RedisServer, loop: str, plans: list[Plan]
) -> None:
    async def scenario() -> None:
        client = RedisClient(redis_server.url, timeout=2.0, failure_threshold=1_000_000)
        nonce = os.urandom(4).hex()

        async def one(i: int, start: float, kind: str, limit: float, size: int) -> Reply:
            await asyncio.sleep(start)
            payload = f"{nonce}:{i}:".encode() + b"p" * size
            task = asyncio.current_task()
            assert task is not None
            if kind == "cancel":
                asyncio.get_running_loop().call_later(limit, task.cancel)
            reply = await client.call("ECHO", payload, timeout=limit if kind == "timeout" else None)
            assert reply == payload
            return reply

        try:
            outcomes = await asyncio.gather(
                *(one(i, *plan) for i, plan in enumerate(plans)), return_exceptions=True
            )
            for (_, kind, _, _), outcome in zip(plans, outcomes, strict=True):
                event(f"{kind}: {getattr(outcome, 'kind', type(outcome).__name__)}")
                if isinstance(outcome, AssertionError):
                    raise outcome  # another call's reply
                if isinstance(outcome, asyncio.CancelledError):
                    assert kind == "cancel"
                elif isinstance(outcome, RedisUnavailable):
                    assert outcome.kind in ("timeout", "closed")
                else:
                    assert isinstance(outcome, bytes)
            assert await client.call("ECHO", nonce) == nonce.encode()
        finally:
            await client.close()

    run(scenario(), loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_stopped_redis_costs_a_timeout_then_nothing(
    fresh_redis_server: RedisServer, loop: str
) -> None:
    async def scenario() -> None:
        states: list[bool] = []
        errors: list[str] = []
        client = RedisClient(
            fresh_redis_server.url,
            timeout=0.05,
            open_for=0.2,
            on_state=states.append,
            on_error=errors.append,
        )
        try:
            assert await client.call("PING") == b"PONG"
            fresh_redis_server.pause()
            try:
                # Calls in flight on the connection fail together, within the timeout.
                started = time.perf_counter()
                outcomes = await asyncio.gather(
                    *(client.call("INCR", "stopped:n") for _ in range(50)), return_exceptions=True
                )
                assert time.perf_counter() - started < 0.05 + SLACK
                assert all(isinstance(outcome, RedisUnavailable) for outcome in outcomes)
                assert sorted(errors) == ["closed"] * 49 + ["timeout"]
                assert available(client)  # one failure of the connection, not 50
                for _ in range(2):  # a new connection each time: the kernel accepts it
                    started = time.perf_counter()
                    with pytest.raises(RedisUnavailable, match="no reply"):
                        await client.call("INCR", "stopped:n")
                    assert time.perf_counter() - started < 0.05 + SLACK
                assert not available(client) and states == [False]
                for _ in range(100):
                    started = time.perf_counter()
                    with pytest.raises(RedisUnavailable) as caught:
                        await client.call("PING")
                    assert caught.value.kind == "breaker-open"
                    assert time.perf_counter() - started < 0.02  # microseconds, really
                await asyncio.sleep(0.2)
                # Half-open: one trial goes to Redis, the others still fail at once.
                trials = await asyncio.gather(
                    *(client.call("PING") for _ in range(10)), return_exceptions=True
                )
                kinds = sorted(getattr(outcome, "kind", "answer") for outcome in trials)
                assert kinds == ["breaker-open"] * 9 + ["timeout"]
            finally:
                fresh_redis_server.resume()
            await until_answered(client)
            assert available(client) and states == [False, True]
        finally:
            await client.close()

    run(scenario(), loop)


async def test_a_killed_and_restarted_redis_is_used_again(
    fresh_redis_server: RedisServer,
) -> None:
    states: list[bool] = []
    client = RedisClient(fresh_redis_server.url, timeout=0.2, open_for=0.05, on_state=states.append)
    try:
        assert await client.call("SET", "restart:k", "before") == b"OK"
        fresh_redis_server.stop()
        for _ in range(5):
            started = time.perf_counter()
            with pytest.raises(RedisUnavailable) as caught:
                await client.call("GET", "restart:k")
            assert caught.value.kind in ("closed", "connect", "breaker-open")
            assert time.perf_counter() - started < 0.2 + SLACK
        assert not available(client)
        fresh_redis_server.start()  # the same port, empty
        await until_answered(client)
        assert await client.call("GET", "restart:k") is None
        assert await client.call("SET", "restart:k", "after") == b"OK"
        assert states == [False, True]
    finally:
        await client.close()


# --- passwords --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_server() -> Iterator[RedisServer]:
    server = start_redis(password=PASSWORD)
    yield server
    server.close()


def shown(error: BaseException) -> str:
    """Everything a log line of the error could show."""
    return "".join(traceback.format_exception(error)) + repr(error)


async def test_auth_with_the_right_password(auth_server: RedisServer) -> None:
    port = auth_server.port
    admin = RedisClient(auth_server.url, password=PASSWORD)
    await admin.call("ACL", "SETUSER", "router", "on", ">router-pw", "~*", "+@all")
    clients = [
        admin,
        RedisClient(f"redis://:{PASSWORD}@127.0.0.1:{port}"),
        RedisClient(f"redis://default:{PASSWORD}@127.0.0.1:{port}/1"),
        RedisClient(f"redis://:wrong@127.0.0.1:{port}", password=PASSWORD),
    ]
    try:
        for client in clients:
            assert await client.call("PING") == b"PONG"
            assert PASSWORD not in repr(client)
        router = RedisClient(f"redis://router:router-pw@127.0.0.1:{port}")
        clients.append(router)
        assert await router.call("ACL", "WHOAMI") == b"router"
    finally:
        for client in clients:
            await client.close()


async def test_a_wrong_password_is_a_clear_connect_failure(auth_server: RedisServer) -> None:
    errors: list[str] = []
    client = RedisClient(auth_server.url, password="wrong-" + PASSWORD, on_error=errors.append)
    try:
        with pytest.raises(RedisUnavailable) as caught:
            await client.call("PING")
        assert caught.value.kind == "connect" and errors == ["connect"]
        assert "redis refused AUTH: WRONGPASS" in str(caught.value)
        assert PASSWORD not in shown(caught.value) and PASSWORD not in repr(client)
    finally:
        await client.close()
    nobody = RedisClient(auth_server.url)
    try:
        with pytest.raises(RedisError) as refused:
            await nobody.call("GET", "k")
        assert refused.value.code == "NOAUTH"
    finally:
        await nobody.close()


# --- TLS ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl CLI")
    directory = tmp_path_factory.mktemp("redis-tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=redis.test",
         "-addext", "subjectAltName=DNS:redis.test"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server = start_redis(tls=(str(cert), str(key)))
    yield server, cert
    server.close()


async def test_tls_checks_the_certificate(tls_server: tuple[RedisServer, Path]) -> None:
    server, cert = tls_server
    url = f"rediss://127.0.0.1:{server.port}"
    good = RedisClient(url, ca_file=str(cert), server_name="redis.test", timeout=2.0)
    unknown_ca = RedisClient(url, server_name="redis.test", timeout=2.0)
    wrong_name = RedisClient(url, ca_file=str(cert), timeout=2.0)
    try:
        assert await good.call("PING") == b"PONG"
        for client in (unknown_ca, wrong_name):
            with pytest.raises(RedisUnavailable, match="CERTIFICATE_VERIFY_FAILED") as caught:
                await client.call("PING")
            assert caught.value.kind == "connect"
    finally:
        for client in (good, unknown_ca, wrong_name):
            await client.close()


# --- hostile servers ------------------------------------------------------------------------

CUT = encode_reply([b"hello", 42, None, [b"x" * 300, RedisError("ERR inner")], []])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(CUT) - 1))
def test_a_reply_cut_at_any_byte_is_never_an_answer(cut: int) -> None:
    async def scenario() -> None:
        async with hostile_redis(CUT[:cut], then="close") as url:
            client = RedisClient(url, timeout=2.0)
            try:
                started = time.perf_counter()
                with pytest.raises(RedisUnavailable) as caught:
                    await client.call("GET", "k")
                assert caught.value.kind == "closed"
                assert time.perf_counter() - started < 1.0  # at the close, not the timeout
            finally:
                await client.close()

    run(scenario())


async def test_the_whole_reply_then_the_cut_one() -> None:
    async with hostile_redis(CUT, 0.01, CUT[:-1], then="close") as url:
        client = RedisClient(url, timeout=2.0)
        try:
            first, second = await asyncio.gather(
                client.call("GET", "a"), client.call("GET", "b"), return_exceptions=True
            )
            assert isinstance(first, list) and first[:2] == [b"hello", 42]
            assert isinstance(second, RedisUnavailable) and second.kind == "closed"
        finally:
            await client.close()


async def test_a_reply_that_stops_midway_times_out() -> None:
    async with hostile_redis(CUT[:20], then="keep") as url:
        client = RedisClient(url, timeout=0.05)
        try:
            started = time.perf_counter()
            with pytest.raises(RedisUnavailable) as caught:
                await client.call("GET", "k")
            assert caught.value.kind == "timeout"
            assert time.perf_counter() - started < 0.05 + SLACK
        finally:
            await client.close()


STREAM = tuple([b"a" * 65536] * 64)  # 4 MiB, sent as fast as the client reads it


@pytest.mark.parametrize(
    "parts",
    [
        (b"hello world\r\n",),
        (b"$999999999999\r\n", *STREAM),
        (b"+", *STREAM),  # a line that never ends
        (b"*2000000\r\n", *STREAM),
        (b"*1\r\n" * 9 + b":1\r\n",),
        (b"+OK\r\n+OK\r\n",),  # two answers to one question: neither is handed out
    ],
    ids=["garbage", "terabyte-bulk", "endless-line", "huge-array", "too-deep", "extra-reply"],
)
async def test_a_hostile_server_is_a_protocol_error_at_once(parts: tuple[bytes, ...]) -> None:
    errors: list[str] = []
    async with hostile_redis(*parts, then="keep") as url:
        client = RedisClient(url, timeout=5.0, on_error=errors.append)
        tracemalloc.start()
        try:
            started = time.perf_counter()
            with pytest.raises(ProtocolError):
                await client.call("GET", "k")
            assert time.perf_counter() - started < 1.0  # not the 5 s timeout
            assert tracemalloc.get_traced_memory()[1] < 2 * MIB
            assert errors == ["protocol"]
        finally:
            tracemalloc.stop()
            await client.close()


# --- closing ------------------------------------------------------------------------------


async def test_a_timeout_is_positive(client: RedisClient) -> None:
    with pytest.raises(ValueError, match="positive"):
        await client.call("PING", timeout=0)
    assert await client.call("PING", timeout=0.5) == b"PONG"


async def test_close_fails_calls_in_flight_and_after(client: RedisClient) -> None:
    assert await client.call("PING") == b"PONG"
    blocked = asyncio.ensure_future(client.call("BLPOP", "close:nothing", 0))
    await asyncio.sleep(0.01)
    await client.close()
    with pytest.raises(RedisUnavailable) as caught:
        await blocked
    assert caught.value.kind == "closed"
    with pytest.raises(RedisUnavailable, match="closed"):
        await client.call("PING")
    await client.close()  # twice is fine


async def test_close_while_connecting_leaves_nothing_behind() -> None:
    async with hostile_redis(then="keep") as url:  # takes AUTH, never answers it
        client = RedisClient(url, password=PASSWORD, timeout=0.05, connect_timeout=5.0)
        with pytest.raises(RedisUnavailable) as caught:
            await client.call("PING")
        assert caught.value.kind == "timeout"
        connecting = [
            t for t in asyncio.all_tasks() if "RedisClient._connect " in repr(t.get_coro())
        ]
        assert len(connecting) == 1  # still waiting for AUTH's answer
        await client.close()
        assert connecting[0].done()
        assert not [t for t in asyncio.all_tasks() if "RedisClient._connect " in repr(t.get_coro())]
