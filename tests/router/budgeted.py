"""What the shared-state tests share: a chat body, a route with Redis, a call that
returns status, lower-cased headers and JSON, and Redis read over a plain socket
(not through the client under test)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from modelroute.router.serve import RouterServer
from modelroute.router.sim import SimServer
from tests.router.conftest import quiet_route
from tests.router.redis_server import RedisServer


def chat(text: str = "Hello there", **extra: Any) -> dict[str, Any]:
    return {"model": "chat-fast", "messages": [{"role": "user", "content": text}], **extra}


def doc_for(
    sim: SimServer,
    redis: RedisServer | None = None,
    prefix: str = "t",
    timeout: str = "100ms",
    **spec: Any,
) -> dict[str, Any]:
    """One provider on ``sim``; with ``redis``, shared state there under ``prefix``."""
    doc = quiet_route({"deepseek": [("us-east-1", sim)]}, **spec)
    if redis is not None:
        doc["spec"]["redis"] = {"url": redis.url, "keyPrefix": f"{prefix}:", "timeout": timeout}
    return doc


async def post(
    http: aiohttp.ClientSession,
    router: RouterServer,
    body: dict[str, Any],
    key: str | None = None,
    **headers: str,
) -> tuple[int, dict[str, str], Any]:
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    async with http.post(f"{router.url}/chat/completions", json=body, headers=headers) as resp:
        got = {k.lower(): v for k, v in resp.headers.items()}
        return resp.status, got, orjson.loads(await resp.read())


async def redis_command(port: int, *args: str) -> bytes:
    """One command; the first line of its reply."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        parts = [b"*%d\r\n" % len(args)]
        parts += [b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in args]
        writer.write(b"".join(parts))
        return await reader.readline()
    finally:
        writer.close()


async def redis_hash(port: int, key: str) -> dict[str, int]:
    """HGETALL of a hash of integers (a budget window)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"*2\r\n$7\r\nHGETALL\r\n$%d\r\n%s\r\n" % (len(key), key.encode()))
        await writer.drain()
        count = int((await reader.readline())[1:])
        fields = []
        for _ in range(count):
            size = int((await reader.readline())[1:])
            fields.append((await reader.readexactly(size + 2))[:-2].decode())
        return {fields[i]: int(fields[i + 1]) for i in range(0, len(fields), 2)}
    finally:
        writer.close()
