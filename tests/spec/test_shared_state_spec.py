"""The spec of shared state: redis, named client keys, budgets, rate limits, cache.

Each mistake a user can make is an error with its field path, before anything
runs; a config whose Redis Secret is missing is refused at load like a missing
provider key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelroute.router.metrics import Metrics
from modelroute.router.table import build_table
from modelroute.spec import SpecInvalid, parse_route


def route(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelroute.io/v1alpha1",
        "kind": "ModelRoute",
        "metadata": {"name": "t"},
        "spec": {
            "regions": [{"name": "r"}],
            "providers": [
                {"name": "p", "endpoints": [{"region": "r", "baseURL": "http://127.0.0.1:9/v1"}]}
            ],
            "models": [
                {"name": "fast", "targets": [{"provider": "p", "model": "m"}]},
                {"name": "auto", "tiers": {"economy": "fast", "standard": "fast"}},
            ],
            **spec,
        },
    }


ALICE = {"name": "alice", "keySecretRef": {"name": "keys", "key": "alice"}}


@pytest.mark.parametrize(
    ("spec", "path", "words"),
    [
        ({"auth": {}}, "spec.auth", "set keysSecretRef or clients"),
        ({"auth": {"clients": [ALICE, ALICE]}}, "spec.auth.clients[1].name", "duplicate client"),
        (
            {"budgets": [{"name": "b", "limitUSD": 1, "client": "alice"}]},
            "spec.budgets[0].client",
            "spec.auth is not set",
        ),
        (
            {
                "auth": {"clients": [ALICE]},
                "budgets": [{"name": "b", "limitUSD": 1, "client": "bob"}],
            },
            "spec.budgets[0].client",
            'unknown client "bob"',
        ),
        (
            {"budgets": [{"name": "b", "limitUSD": 1, "model": "nope"}]},
            "spec.budgets[0].model",
            'unknown model "nope"',
        ),
        (
            {"budgets": [{"name": "b", "limitUSD": 1, "onExceeded": "degrade"}]},
            "spec.budgets[0].degradeTo",
            "needs degradeTo",
        ),
        (
            {"budgets": [{"name": "b", "limitUSD": 1, "onExceeded": "degrade", "degradeTo": "x"}]},
            "spec.budgets[0].degradeTo",
            'unknown model "x"',
        ),
        (
            {"budgets": [{"name": "b", "limitUSD": 1}, {"name": "b", "limitUSD": 2}]},
            "spec.budgets[1].name",
            "duplicate budget",
        ),
        ({"budgets": [{"name": "b", "limitUSD": -1}]}, "spec.budgets[0].limitUSD", ""),
        (
            {"budgets": [{"name": "b", "limitUSD": 1, "window": "week"}]},
            "spec.budgets[0].window",
            "",
        ),
        (
            {"rateLimits": [{"name": "r"}]},
            "spec.rateLimits[0]",
            "requestsPerMinute, tokensPerMinute",
        ),
        (
            {"rateLimits": [{"name": "r", "requestsPerMinute": 0}]},
            "spec.rateLimits[0].requestsPerMinute",
            "",
        ),
        ({"redis": {"url": "redis://:secret@host:6379"}}, "spec.redis.url", ""),
        ({"redis": {"url": "http://host:6379"}}, "spec.redis.url", ""),
        (
            {"redis": {"url": "redis://host:6379", "username": "u"}},
            "spec.redis.username",
            "needs passwordSecretRef",
        ),
        ({"redis": {"url": "redis://host:6379", "tls": {}}}, "spec.redis.tls", "rediss://"),
        ({"redis": {"url": "redis://host", "leasePercent": 80}}, "spec.redis.leasePercent", ""),
        ({"cache": {"policy": "sometimes"}}, "spec.cache.policy", ""),
    ],
)
def test_mistakes_are_errors_with_their_path(spec: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(SpecInvalid) as caught:
        parse_route(route(**spec))
    found = [e for e in caught.value.errors if e.path == path]
    assert found, caught.value.errors
    assert words in found[0].message


def test_a_full_shared_state_spec_parses_with_its_defaults() -> None:
    parsed = parse_route(
        route(
            redis={
                "url": "rediss://cache.example:6380/2",
                "passwordSecretRef": {"name": "r", "key": "p"},
            },
            auth={"clients": [ALICE], "keysSecretRef": {"name": "keys", "key": "more"}},
            budgets=[
                {"name": "monthly", "limitUSD": 500, "window": "month"},
                {"name": "alice", "limitUSD": 5, "client": "alice"},
                {"name": "hashed", "limitUSD": 5, "client": "key-0a1b2c3d"},
                {"name": "auto", "limitUSD": 5, "model": "auto", "onExceeded": "degrade"},
            ],
            rateLimits=[{"name": "each", "requestsPerMinute": 60}],
            cache={"enabled": True},
        )
    ).spec
    assert parsed.redis is not None and parsed.redis.timeout == 0.05
    assert parsed.redis.lease_percent == 2 and parsed.redis.key_prefix is None
    assert parsed.budgets[0].on_exceeded == "reject" and parsed.budgets[0].clamp_max_tokens
    assert parsed.cache.policy == "deterministic" and parsed.cache.max_bytes == 64 * 1024 * 1024
    assert parsed.models[0].output_allowance == 4096


def test_a_missing_redis_secret_refuses_the_config(tmp_path: Path) -> None:
    doc = route(
        redis={"url": "redis://127.0.0.1:1", "passwordSecretRef": {"name": "redis", "key": "pw"}}
    )
    with pytest.raises(SpecInvalid) as caught:
        build_table(parse_route(doc), None, tmp_path, Metrics())
    assert caught.value.errors[0].path == "spec.redis.passwordSecretRef"
    (tmp_path / "redis").mkdir()
    (tmp_path / "redis" / "pw").write_text("hunter2\n")
    build_table(parse_route(doc), None, tmp_path, Metrics())
