"""A bare aiohttp reverse proxy: the benchmark's reference for "a Python proxy with no features".

It is what a team writes first: aiohttp on both sides on uvloop, one shared
keep-alive ClientSession, headers copied minus hop-by-hop ones, the answer
streamed back as it arrives. No routing, metrics, retries or logging, so what
modelroute spends beyond it is the price of its features and its design.

    python benchmarks/passthrough.py --port 8001 --upstream http://127.0.0.1:9000
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

from aiohttp import ClientSession, TCPConnector, web
from multidict import CIMultiDict, CIMultiDictProxy

HOP_BY_HOP = {"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"}
NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length"}
SESSION = web.AppKey("session", ClientSession)
UPSTREAM = web.AppKey("upstream", str)


def forwarded(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in NOT_FORWARDED)


async def proxy(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    url = request.app[UPSTREAM] + request.path_qs
    session = request.app[SESSION]
    headers = forwarded(request.headers)
    async with session.request(request.method, url, headers=headers, data=body) as upstream:
        response = web.StreamResponse(status=upstream.status, headers=forwarded(upstream.headers))
        if upstream.content_length is not None:
            response.content_length = upstream.content_length
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


async def session_context(app: web.Application) -> AsyncIterator[None]:
    # limit=0: no cap on upstream connections, or 2,000 streams would queue behind 100.
    connector = TCPConnector(limit=0, keepalive_timeout=60)
    async with ClientSession(connector=connector, auto_decompress=False) as session:
        app[SESSION] = session
        yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:9000")
    args = parser.parse_args()
    app = web.Application()
    app[UPSTREAM] = args.upstream.rstrip("/")
    app.cleanup_ctx.append(session_context)
    app.router.add_route("*", "/{tail:.*}", proxy)
    loop: asyncio.AbstractEventLoop | None = None
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        pass
    web.run_app(
        app, host="127.0.0.1", port=args.port, access_log=None, backlog=4096, print=None, loop=loop
    )


if __name__ == "__main__":
    main()
