"""Upstreams over HTTPS: real providers are all TLS; certificates are verified."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.router.conftest import RouterFactory, quiet_route

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")

CHAT = {"model": "chat-fast", "messages": [{"role": "user", "content": "Hello"}]}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


class TlsUpstream:
    """A minimal OpenAI-compatible upstream that only speaks HTTPS."""

    def __init__(self) -> None:
        self.hosts: list[str] = []
        self.port = 0

    async def chat(self, request: web.Request) -> web.Response:
        self.hosts.append(request.host)
        body = await request.json()
        return web.json_response(
            {
                "id": "x",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "secure"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )


@pytest.fixture
async def tls_upstream(certificate: tuple[Path, Path]) -> AsyncIterator[TlsUpstream]:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    upstream = TlsUpstream()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", upstream.chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    upstream.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield upstream
    await runner.cleanup()


def tls_route(port: int) -> dict[str, Any]:
    doc = quiet_route({"deepseek": []})
    doc["spec"]["providers"][0]["endpoints"] = [
        {"region": "us-east-1", "baseURL": f"https://localhost:{port}/v1"}
    ]
    return doc


async def test_https_upstream_with_a_trusted_certificate(
    tls_upstream: TlsUpstream,
    make_router: RouterFactory,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # trust our CA
    router = await make_router(tls_route(tls_upstream.port))
    async with aiohttp.ClientSession() as http:
        for _ in range(2):  # the second request reuses the pooled TLS connection
            async with http.post(f"{router.url}/chat/completions", json=CHAT) as resp:
                assert resp.status == 200
                assert (await resp.json())["choices"][0]["message"]["content"] == "secure"
    assert tls_upstream.hosts == [f"localhost:{tls_upstream.port}"] * 2


async def test_an_untrusted_certificate_is_refused(
    tls_upstream: TlsUpstream,
    make_router: RouterFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    empty = tmp_path / "no-cas.pem"
    empty.write_text("")
    monkeypatch.setenv("SSL_CERT_FILE", str(empty))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    router = await make_router(tls_route(tls_upstream.port))
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{router.url}/chat/completions", json=CHAT) as resp,
    ):
        assert resp.status == 503
        assert "CERTIFICATE_VERIFY_FAILED" in (await resp.json())["error"]["message"]
    assert tls_upstream.hosts == []
