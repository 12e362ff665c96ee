"""Operator-wide settings: what is the same for every ModelRoute the operator serves.

Per-route choices belong in the ModelRoute (its spec, or the few annotations
documented in :mod:`modelroute.operator.render`); only what an administrator
decides once per installation lives here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import modelroute

ROUTER_IMAGE_ENV = "MODELROUTE_ROUTER_IMAGE"
DEFAULT_ROUTER_IMAGE = f"ghcr.io/modelroute/modelroute:{modelroute.__version__}"
DEFAULT_RESYNC_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    """Installation-wide inputs to rendering and reconciling."""

    router_image: str = DEFAULT_ROUTER_IMAGE
    resync_seconds: float = DEFAULT_RESYNC_SECONDS
    """How often every route is re-checked; bounds how long drift survives."""

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, resync_seconds: float = DEFAULT_RESYNC_SECONDS
    ) -> OperatorSettings:
        """Settings from ``$MODELROUTE_ROUTER_IMAGE`` (the operator Deployment sets it)."""
        environ = os.environ if env is None else env
        image = environ.get(ROUTER_IMAGE_ENV) or DEFAULT_ROUTER_IMAGE
        return cls(router_image=image, resync_seconds=resync_seconds)
