"""One operator process: leader election, the controller while leading, the admin port.

Every replica campaigns for the Lease; the one holding it runs the
:class:`~modelroute.operator.controller.Controller`, the others wait. A leader
that loses the Lease stops its controller and the process exits (the kubelet
restarts it as a fresh candidate), as client-go's controllers do.

The admin port (default ``:8081``) serves, from its own thread, so a busy
reconcile never delays an answer:

* ``/healthz`` (liveness): 200 while the leader-election loop keeps turning and,
  on the leader, every informer and worker thread is alive. Nothing in it waits
  on the API server, so an API outage does not restart the operator;
* ``/readyz`` (readiness): 200 once a standby is campaigning, or the leader's
  caches are synced; the body says which;
* ``/metrics``: :mod:`modelroute.operator.metrics`.
"""

from __future__ import annotations

import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from modelroute.operator.controller import Controller
from modelroute.operator.kube import Kube
from modelroute.operator.leader import LeaderElector
from modelroute.operator.metrics import OperatorMetrics
from modelroute.operator.settings import OperatorSettings

log = logging.getLogger("modelroute.operator")

STALL = 120.0  # seconds without a leader-election attempt before liveness fails


class Operator:
    """Campaign, lead, serve the admin endpoints; :meth:`stop` releases the Lease."""

    def __init__(self, settings: OperatorSettings, kube: Kube, metrics: OperatorMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.kube = kube
        self.controller: Controller | None = None
        self.lost = threading.Event()
        """Set when a term ended without :meth:`stop`: the process should exit."""
        self._stopping = False
        self.elector = LeaderElector(
            kube,
            settings.lease_namespace,
            settings.lease_name,
            settings.identity,
            settings.leader_timing,
            on_start=self._lead,
            on_stop=self._step_down,
        )
        self._admin: ThreadingHTTPServer | None = None

    def _lead(self) -> None:
        self.metrics.leader.set(1)
        controller = Controller(self.kube.fenced(self.elector.holding), self.settings, self.metrics)
        self.controller = controller
        controller.start()

    def _step_down(self) -> None:
        self.metrics.leader.set(0)
        controller, self.controller = self.controller, None
        if controller is not None:
            controller.stop()
        if not self._stopping:
            self.lost.set()

    def start(self) -> None:
        self.elector.start()

    def stop(self) -> None:
        self._stopping = True
        self.elector.stop()
        if self._admin is not None:
            self._admin.shutdown()
            self._admin.server_close()

    # -- admin endpoints -----------------------------------------------------------------

    def live(self) -> tuple[bool, str]:
        if not self.elector.alive():
            return False, "leader election stopped"
        if time.monotonic() - self.elector.last_attempt > STALL:
            return False, "leader election stalled"
        controller = self.controller
        if controller is not None and not controller.alive():
            return False, "a controller thread died"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        if not self.elector.alive():
            return False, "not campaigning"
        controller = self.controller
        if controller is None:
            return True, "standby"
        if not controller.synced():
            return False, "leader, caches syncing"
        return True, "leader"

    def serve_admin(self, host: str, port: int) -> int:
        """Serve /healthz, /readyz and /metrics from a thread; returns the bound port."""
        operator = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    body, status, kind = operator.metrics.exposition(), 200, "text/plain"
                elif self.path in ("/healthz", "/readyz"):
                    ok, text = operator.live() if self.path == "/healthz" else operator.ready()
                    body, status, kind = text.encode() + b"\n", 200 if ok else 503, "text/plain"
                else:
                    body, status, kind = b"not found\n", 404, "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", f"{kind}; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # probes every few seconds would drown the log

        self._admin = ThreadingHTTPServer((host, port), Handler)
        self._admin.daemon_threads = True
        threading.Thread(target=self._admin.serve_forever, name="admin", daemon=True).start()
        return int(self._admin.server_address[1])
