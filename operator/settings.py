"""Operator-wide settings: what is the same for every ModelRoute the operator serves.

Per-route choices belong in the ModelRoute (its spec, or the few annotations
documented in :mod:`modelroute.operator.render`); only what an administrator
decides once per installation lives here: the router image, which namespaces
and which regions this operator serves, how often it re-checks routes, and
where its leader-election Lease lives.

Regions: one cluster per region runs one operator per cluster with
``--region <that region>``; it renders routers for that region only and
reports only it. One cluster stretched across regions runs one operator with
no ``--region``, which serves every region a route lists.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import modelroute

ROUTER_IMAGE_ENV = "MODELROUTE_ROUTER_IMAGE"
DEFAULT_ROUTER_IMAGE = f"ghcr.io/modelroute/modelroute:{modelroute.__version__}"
DEFAULT_RESYNC_SECONDS = 300.0
LEASE_NAME = "modelroute-operator"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True, slots=True)
class Timing:
    """Leader election's clock, client-go's names (defaults: 30 s, 20 s, 5 s)."""

    lease_duration: float = 30.0
    """How long a Lease nobody renews keeps others waiting."""
    renew_deadline: float = 20.0
    """How long a leader keeps leading without a successful renewal."""
    retry_period: float = 5.0
    """How often the leader renews and the others try."""

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("need 0 < retry_period < renew_deadline < lease_duration")


def default_identity(env: Mapping[str, str]) -> str:
    """``$POD_NAME`` (the Deployment sets it from the downward API), else host and a nonce."""
    return env.get("POD_NAME") or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def default_lease_namespace(env: Mapping[str, str]) -> str:
    """``$POD_NAMESPACE``, else the service account's namespace, else ``default``."""
    if env.get("POD_NAMESPACE"):
        return env["POD_NAMESPACE"]
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    """Installation-wide inputs to rendering and reconciling."""

    router_image: str = DEFAULT_ROUTER_IMAGE
    resync_seconds: float = DEFAULT_RESYNC_SECONDS
    """Every route is re-checked against the caches this often (jittered), a safety net
    behind the watches; it costs API requests only when something drifted."""
    regions: frozenset[str] | None = None
    """Regions this operator runs routers for; None: every region a route lists."""
    namespaces: tuple[str, ...] = ()
    """Namespaces whose routes are reconciled; empty: all."""
    identity: str = field(default_factory=lambda: default_identity({}))
    lease_namespace: str = "default"
    lease_name: str = LEASE_NAME
    leader_timing: Timing = field(default_factory=Timing)
    workers: int = 4

    def serves(self, region: str) -> bool:
        return self.regions is None or region in self.regions

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        resync_seconds: float = DEFAULT_RESYNC_SECONDS,
        regions: frozenset[str] | None = None,
        namespaces: tuple[str, ...] = (),
        lease_name: str = LEASE_NAME,
    ) -> OperatorSettings:
        """Settings from ``$MODELROUTE_ROUTER_IMAGE``, ``$POD_NAME`` and ``$POD_NAMESPACE``
        (the operator Deployment sets them)."""
        environ = os.environ if env is None else env
        image = environ.get(ROUTER_IMAGE_ENV) or DEFAULT_ROUTER_IMAGE
        return cls(
            router_image=image,
            resync_seconds=resync_seconds,
            regions=regions,
            namespaces=namespaces,
            identity=default_identity(environ),
            lease_namespace=default_lease_namespace(environ),
            lease_name=lease_name,
        )
