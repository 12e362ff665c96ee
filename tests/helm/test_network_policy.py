"""The routers' NetworkPolicy: absent by default; enabled, it lets in only the chosen
namespaces and lets out only DNS and the upstreams.

Rendered by the real helm and validated against Kubernetes 1.33's schema, then read with
NetworkPolicy's semantics (:func:`allows`, for the kinds of peers the chart renders)
against the pods the operator really renders. Reading the policy this way, not field by
field, catches the classic mistake: a rule with an empty ``from``/``to`` allows everyone.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Literal

import kubernetes_validate
import pytest
import yaml

from modelroute.operator.render import ADMIN_PORT, PORT, render
from modelroute.operator.settings import OperatorSettings
from modelroute.spec import parse_route

from .chart import ALL_ON, MANIFESTS, Helm, HelmFailed, Manifest, by_kind, one

KUBERNETES = "1.33"


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict[str, str] = field(default_factory=dict)
    namespace_labels: dict[str, str] = field(default_factory=dict)

    def all_namespace_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace, **self.namespace_labels}


Peer = Pod | str  # a pod, or an IP address outside the cluster


def matches(selector: Manifest, labels: dict[str, str]) -> bool:
    """LabelSelector semantics (an empty selector matches everything)."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        present = key in labels
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
    return True


def peer_matches(peer: Manifest, other: Peer, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        if not isinstance(other, str):
            return False  # ipBlock is for addresses outside the cluster
        address = ipaddress.ip_address(other)
        block = peer["ipBlock"]
        inside = address in ipaddress.ip_network(block["cidr"])
        return inside and not any(
            address in ipaddress.ip_network(cut) for cut in block.get("except", [])
        )
    if isinstance(other, str):
        return False
    if "namespaceSelector" in peer:
        if not matches(peer["namespaceSelector"], other.all_namespace_labels()):
            return False
    elif other.namespace != policy_namespace:
        return False  # a podSelector alone means the policy's own namespace
    return matches(peer.get("podSelector", {}), other.labels)


def port_matches(rule: Manifest, port: int, protocol: str) -> bool:
    if not rule.get("ports"):
        return True  # no ports: every port
    return any(
        p.get("protocol", "TCP") == protocol and p.get("port") in (None, port)
        for p in rule["ports"]
    )


def allows(
    policy: Manifest,
    direction: Literal["ingress", "egress"],
    pod: Pod,
    other: Peer,
    port: int,
    protocol: str = "TCP",
) -> bool:
    """Whether ``policy`` lets ``other`` reach ``pod`` (ingress), or ``pod`` reach ``other``."""
    spec = policy["spec"]
    namespace = policy["metadata"]["namespace"]
    assert pod.namespace == namespace and matches(spec["podSelector"], pod.labels)
    assert direction.capitalize() in spec["policyTypes"]
    peers_key = "from" if direction == "ingress" else "to"
    for rule in spec.get(direction, []):
        if not port_matches(rule, port, protocol):
            continue
        peers = rule.get(peers_key)
        if not peers or any(peer_matches(peer, other, namespace) for peer in peers):
            return True
    return False


def policies(helm: Helm, values: Manifest) -> list[Manifest]:
    found = by_kind(helm.template(values), "NetworkPolicy")
    for policy in found:
        kubernetes_validate.validate(policy, KUBERNETES, strict=True)
    return found


def enabled(**network_policy: Any) -> Manifest:
    return {"networkPolicy": {"enabled": True, **network_policy}}


def router_pods(namespace: str) -> list[Pod]:
    """The pods of the two-region example and of a second route, as the operator renders them."""
    document = yaml.safe_load((MANIFESTS / "examples" / "chat-two-regions.yaml").read_text())
    other = yaml.safe_load((MANIFESTS / "examples" / "chat-two-regions.yaml").read_text())
    other["metadata"]["name"] = "batch"
    pods = []
    for route in (document, other):
        for obj in render(route, parse_route(route), OperatorSettings(), namespace):
            if obj["kind"] == "Deployment":
                (container,) = obj["spec"]["template"]["spec"]["containers"]
                assert container["ports"][0]["containerPort"] == PORT
                pods.append(Pod(namespace, obj["spec"]["template"]["metadata"]["labels"]))
    assert len(pods) == 4
    return pods


def test_absent_by_default(helm: Helm) -> None:
    assert by_kind(helm.template(), "NetworkPolicy") == []
    values = {"networkPolicy": {"namespaces": ["ai"]}, "watchNamespaces": ["ai"]}
    assert by_kind(helm.template(values), "NetworkPolicy") == []


def test_one_policy_per_namespace_covering_every_router_not_the_operator(helm: Helm) -> None:
    found = policies(helm, enabled(namespaces=["ai", "team-b"]))
    assert [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in found] == [
        ("ai", "modelroute-routers"),
        ("team-b", "modelroute-routers"),
    ]
    operator = one(helm.template(), "Deployment")["spec"]["template"]["metadata"]["labels"]
    for policy in found:
        selector = policy["spec"]["podSelector"]
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        for pod in router_pods(policy["metadata"]["namespace"]):
            assert matches(selector, pod.labels), pod
        assert not matches(selector, operator)


def test_namespaces_default_to_the_watched_ones(helm: Helm) -> None:
    found = policies(helm, {**enabled(), "watchNamespaces": ["team-a", "team-b"]})
    assert [p["metadata"]["namespace"] for p in found] == ["team-a", "team-b"]


def test_api_port_from_the_chosen_namespaces_admin_port_from_the_scrapers_only(
    helm: Helm,
) -> None:
    (policy,) = policies(
        helm,
        enabled(
            namespaces=["ai"],
            ingress={
                "namespaces": ["web"],
                "namespaceSelectors": [{"matchLabels": {"modelroute.io/client": "true"}}],
            },
        ),
    )
    router = router_pods("ai")[0]
    web = Pod("web", {"app": "shop"})
    labelled = Pod("billing", {"app": "billing"}, {"modelroute.io/client": "true"})
    prometheus = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"})  # the default
    for client in (web, labelled):
        assert allows(policy, "ingress", router, client, PORT), client
        assert not allows(policy, "ingress", router, client, ADMIN_PORT), client  # no /metrics
    assert allows(policy, "ingress", router, prometheus, ADMIN_PORT)
    assert not allows(policy, "ingress", router, prometheus, PORT)
    assert not allows(policy, "ingress", router, web, 8081)
    for stranger in (
        Pod("other"),
        Pod("ai", {"app": "same-namespace-but-not-listed"}),
        Pod("billing", {}, {"modelroute.io/client": "false"}),
        "203.0.113.7",
    ):
        assert not allows(policy, "ingress", router, stranger, PORT), stranger


def test_egress_only_to_dns_and_https_by_default(helm: Helm) -> None:
    (policy,) = policies(helm, enabled(namespaces=["ai"]))
    router = router_pods("ai")[0]
    dns = Pod("kube-system", {"k8s-app": "kube-dns"})
    assert allows(policy, "egress", router, dns, 53, "UDP")
    assert allows(policy, "egress", router, dns, 53, "TCP")
    assert not allows(policy, "egress", router, dns, 8080)
    assert not allows(policy, "egress", router, Pod("kube-system", {"k8s-app": "other"}), 53, "UDP")
    assert not allows(policy, "egress", router, Pod("ai", {"k8s-app": "kube-dns"}), 53, "UDP")
    # The documented default: HTTPS to any address, no range left out.
    (upstream,) = [r for r in policy["spec"]["egress"] if "ipBlock" in r["to"][0]]
    assert upstream == {
        "to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
        "ports": [{"protocol": "TCP", "port": 443}],
    }
    for address in ("104.18.6.192", "10.1.2.3"):
        assert allows(policy, "egress", router, address, 443)
        assert not allows(policy, "egress", router, address, 80)
    assert not allows(policy, "egress", router, "169.254.169.254", 80)  # cloud metadata
    assert not allows(policy, "egress", router, "2001:db8::1", 443)  # IPv6: add "::/0"
    assert not allows(policy, "egress", router, Pod("redis", {"app": "redis"}), 6379)
    assert not allows(policy, "egress", router, Pod("ai", {"app": "vllm"}), 443)


def test_upstream_ranges_exceptions_and_extra_rules(helm: Helm) -> None:
    found = policies(helm, ALL_ON)
    assert [p["metadata"]["namespace"] for p in found] == ["team-a", "team-b"]
    policy = found[0]
    router = router_pods("team-a")[0]
    assert allows(policy, "ingress", router, Pod("team-a"), PORT)  # listed explicitly
    assert allows(policy, "ingress", router, Pod("monitoring"), ADMIN_PORT)
    assert not allows(policy, "ingress", router, Pod("monitoring"), PORT)
    assert allows(policy, "egress", router, Pod("dns-system", {"app": "coredns"}), 53, "UDP")
    assert not allows(policy, "egress", router, Pod("kube-system", {"k8s-app": "kube-dns"}), 53)
    assert allows(policy, "egress", router, "104.18.6.192", 443)
    assert not allows(policy, "egress", router, "10.1.2.3", 443)  # except
    assert allows(policy, "egress", router, "2001:db8::1", 8443)
    assert not allows(policy, "egress", router, "2001:db9::1", 443)
    vllm = Pod("vllm", {"app": "vllm"})
    assert allows(policy, "egress", router, vllm, 8000)
    assert not allows(policy, "egress", router, vllm, 8001)
    assert policy["spec"]["egress"][-1] == ALL_ON["networkPolicy"]["egress"]["extra"][0]


def test_the_reading_notices_an_open_rule(helm: Helm) -> None:
    """Guard against semantics that deny everything: an empty ``from`` lets anyone in."""
    (policy,) = policies(helm, enabled(namespaces=["ai"]))
    router = router_pods("ai")[0]
    assert not allows(policy, "ingress", router, Pod("other"), PORT)
    policy["spec"]["ingress"][0]["from"] = []
    assert allows(policy, "ingress", router, Pod("other"), ADMIN_PORT)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (enabled(), "neither networkPolicy.namespaces nor watchNamespaces lists a namespace"),
        (
            enabled(
                namespaces=["ai"],
                ingress={"namespaces": [], "namespaceSelectors": [], "scraperNamespaces": []},
            ),
            "networkPolicy.ingress allows no namespace",
        ),
    ],
    ids=["no-namespace", "no-client"],
)
def test_refuses_a_policy_that_would_do_nothing_useful(
    helm: Helm, values: Manifest, message: str
) -> None:
    with pytest.raises(HelmFailed, match=message):
        helm.template(values)
