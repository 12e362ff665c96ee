"""kopf wiring: when to reconcile, and how its results reach the cluster.

Every trigger runs the same level-based :func:`~modelroute.operator.reconcile.reconcile`:

* ``create``/``update``/``resume``: a new route, a changed spec or annotation,
  or an operator restart;
* a ``resync`` timer every ``resync_seconds``: repairs drift (a child deleted or
  edited by hand) and refreshes ``status`` as Deployments become ready. The
  timer bounds how long drift can survive.

Reconciles of one route never overlap (a lock per route), since the timer and
a spec change may fire together. kopf's own bookkeeping goes to annotations
under ``modelroute.io/`` rather than ``status``, which the CRD schema prunes.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

import kopf
import urllib3

from modelroute.operator.kube import ApiError, Kube
from modelroute.operator.reconcile import reconcile
from modelroute.operator.render import plain
from modelroute.operator.settings import OperatorSettings
from modelroute.spec import GROUP, PLURAL, VERSION

RETRY_DELAY = 10.0
ANNOTATION_PREFIX = "modelroute.io"


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """Keep kopf's state in annotations; bound watch connections so stale ones are renewed."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330


class Controller:
    """Holds the API connection and per-route locks for the handlers."""

    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings
        self._kube: Kube | None = None
        self._stopped = False
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def start(self) -> None:
        self._kube = Kube.connect()

    def stop(self) -> None:
        self._stopped = True
        if self._kube is not None:
            self._kube.close()
            self._kube = None

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def run(self, body: kopf.Body, patch: kopf.Patch) -> None:
        """Reconcile ``body``; write changed status fields into ``patch``; post Events."""
        if self._stopped:
            return  # a timer that fired during shutdown
        if self._kube is None:
            raise kopf.TemporaryError("not connected to the Kubernetes API yet", delay=1)
        key = str(body.metadata.uid or f"{body.metadata.namespace}/{body.metadata.name}")
        with self._lock(key):
            try:
                outcome = reconcile(body, self._kube, self.settings, datetime.now(UTC))
            except (ApiError, urllib3.exceptions.HTTPError, OSError) as exc:
                raise kopf.TemporaryError(f"Kubernetes API: {exc}", delay=RETRY_DELAY) from exc
        current = plain(body.get("status") or {})
        for field, value in outcome.status.items():
            if current.get(field) != value:
                patch.status[field] = value
        for event in outcome.events:
            kopf.event(body, type=event.type, reason=event.reason, message=event.message)


def build_registry(settings: OperatorSettings) -> kopf.OperatorRegistry:
    """A registry with the ModelRoute handlers, bound to ``settings``."""
    registry = kopf.OperatorRegistry()
    controller = Controller(settings)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """The same credentials as :class:`~modelroute.operator.kube.Kube`: kubeconfig or in-cluster."""
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings)
        controller.start()

    @kopf.on.cleanup(registry=registry)
    def cleanup(**_: Any) -> None:
        controller.stop()

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry, id="reconcile")
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry, id="reconcile")
    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry, id="reconcile")
    def on_change(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        controller.run(body, patch)

    @kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        registry=registry,
        id="resync",
        interval=settings.resync_seconds,
        initial_delay=settings.resync_seconds,
    )
    def resync(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        controller.run(body, patch)

    return registry
