"""The Secrets of shared state reach every router: named client keys, Redis's password
and CA, mounted like provider keys; a missing one is InvalidSpec naming its field."""

from __future__ import annotations

from typing import Any

from modelroute.operator.checks import check_secrets
from modelroute.operator.render import render
from modelroute.spec import parse_route
from tests.operator.conftest import SETTINGS, minimal_route


def shared_route() -> dict[str, Any]:
    doc = minimal_route()
    doc["spec"]["auth"] = {
        "clients": [{"name": "search", "keySecretRef": {"name": "search-keys", "key": "keys"}}]
    }
    doc["spec"]["redis"] = {
        "url": "rediss://valkey.cache.svc:6380/0",
        "passwordSecretRef": {"name": "valkey", "key": "password"},
        "tls": {"caSecretRef": {"name": "valkey-ca", "key": "ca.crt"}},
    }
    doc["spec"]["budgets"] = [{"name": "daily", "limitUSD": 10, "client": "search"}]
    return doc


def test_every_router_mounts_the_client_keys_and_redis_secrets() -> None:
    doc = shared_route()
    objects = render(doc, parse_route(doc), SETTINGS, "ai")
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
        for secret in ("search-keys", "valkey", "valkey-ca"):
            assert f"/var/run/secrets/modelroute/{secret}" in mounts
        volumes = {v["secret"]["secretName"]: v["secret"] for v in spec["volumes"] if "secret" in v}
        assert volumes["valkey"]["items"] == [{"key": "password", "path": "password"}]
        assert volumes["valkey-ca"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
    # Never a value in a ConfigMap: the config names the Secrets only.
    configs = [o for o in objects if o["kind"] == "ConfigMap"]
    assert configs and all("password:" not in str(c["data"]) for c in configs)


def test_a_missing_redis_or_client_secret_is_named() -> None:
    doc = shared_route()
    present = {"ds-us-east-1": {"apiKey"}, "ds-eu-west-1": {"apiKey"}, "valkey": {"password"}}
    errors = check_secrets(parse_route(doc), "ai", lambda name: present.get(name))
    paths = {error.path for error in errors}
    assert paths == {"spec.auth.clients[0].keySecretRef.name", "spec.redis.tls.caSecretRef.name"}
