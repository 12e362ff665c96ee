"""``modelroute render`` and ``modelroute operator``: argv in, exit code out.

The CLI passes the arguments after the subcommand; nothing here prints
tracebacks for a user's mistake: a bad spec is a list of field paths on
stderr and exit code 1, a bad flag is argparse's usage and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from modelroute.operator.checks import validate
from modelroute.operator.render import render, to_yaml
from modelroute.operator.settings import (
    DEFAULT_RESYNC_SECONDS,
    LEASE_NAME,
    ROUTER_IMAGE_ENV,
    OperatorSettings,
)
from modelroute.spec import SpecInvalid, parse_route, read_route_document

DEFAULT_LISTEN = "0.0.0.0:8081"


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace | int:
    try:
        return parser.parse_args(list(argv))
    except SystemExit as exc:  # --help, or a usage error already printed
        return int(exc.code or 0)


def render_main(argv: list[str]) -> int:
    """Print the objects the operator would apply for a ModelRoute file, as YAML."""
    parser = argparse.ArgumentParser(
        prog="modelroute render",
        description="Print the Kubernetes objects the operator creates for a ModelRoute, "
        "without a cluster. Owner references appear only when the file has metadata.uid; "
        f"the router image comes from ${ROUTER_IMAGE_ENV}, as in the operator.",
    )
    parser.add_argument("path", help="YAML file holding one ModelRoute")
    parser.add_argument(
        "--namespace", "-n", help="namespace of the objects (default: the file's, else 'default')"
    )
    parser.add_argument(
        "--region",
        action="append",
        default=[],
        help="render routers only for this region, as an operator started with --region "
        "would (repeatable; default: every region)",
    )
    args = _parse(parser, argv)
    if isinstance(args, int):
        return args
    try:
        document = read_route_document(args.path)
    except SpecInvalid as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return 1
    metadata = document.get("metadata") if isinstance(document.get("metadata"), dict) else {}
    namespace = args.namespace or (metadata or {}).get("namespace") or "default"
    errors = validate(document, namespace, secret_keys=None)
    if errors:
        for error in errors:
            print(error, file=sys.stderr)
        print(f"{args.path}: {len(errors)} problem(s); nothing rendered", file=sys.stderr)
        return 1
    settings = OperatorSettings.from_env(regions=frozenset(args.region) or None)
    objects = render(document, parse_route(document), settings, namespace)
    sys.stdout.write(to_yaml(objects))
    return 0


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"not HOST:PORT: {text!r}")
    return host or "0.0.0.0", int(port)


def operator_main(argv: list[str]) -> int:
    """Run the operator until SIGTERM/SIGINT (exit 0), or until it loses its Lease (exit 1)."""
    parser = argparse.ArgumentParser(
        prog="modelroute operator",
        description="Reconcile ModelRoute resources into per-region routers. Any number of "
        "replicas may run: they elect a leader on a Lease in their own namespace "
        "($POD_NAMESPACE) and only the leader writes.",
    )
    parser.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="reconcile routes in this namespace (repeatable; default: all namespaces)",
    )
    parser.add_argument(
        "--region",
        action="append",
        default=[],
        help="run routers only for this region (repeatable; default: every region a route "
        "lists). Set it when each region has its own cluster and operator",
    )
    parser.add_argument(
        "--resync",
        type=float,
        default=DEFAULT_RESYNC_SECONDS,
        metavar="SECONDS",
        help="re-check every route against the watched state this often, spread over the "
        "period; watches make changes show within seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--lease",
        default=LEASE_NAME,
        metavar="NAME",
        help="the leader-election Lease, in the operator's namespace ($POD_NAMESPACE): "
        "replicas sharing it elect one leader; separate installations need separate names "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--listen",
        type=_address,
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help="serve /healthz, /readyz and /metrics here (default: %(default)s)",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log at debug level")
    args = _parse(parser, argv)
    if isinstance(args, int):
        return args
    if args.resync <= 0:
        parser.print_usage(sys.stderr)
        print("modelroute operator: --resync must be positive", file=sys.stderr)
        return 2

    settings = OperatorSettings.from_env(
        resync_seconds=args.resync,
        regions=frozenset(args.region) or None,
        namespaces=tuple(args.namespace),
        lease_name=args.lease,
    )
    return run(settings, args.listen, args.verbose)


def run(settings: OperatorSettings, listen: tuple[str, int], verbose: bool) -> int:
    import modelroute
    from modelroute.operator.kube import Kube
    from modelroute.operator.metrics import OperatorMetrics
    from modelroute.operator.runtime import Operator

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    metrics = OperatorMetrics()
    kube = Kube.connect(
        user_agent=f"modelroute-operator/{modelroute.__version__}",
        on_request=metrics.count_request,
        pool_size=8 + 7 * max(1, len(settings.namespaces)),
    )
    operator = Operator(settings, kube, metrics)
    port = operator.serve_admin(*listen)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    regions = ", ".join(sorted(settings.regions)) if settings.regions else "every region"
    logging.getLogger("modelroute.operator").info(
        "operator %s serving %s; admin endpoints on port %d",
        settings.identity,
        regions,
        port,
    )
    operator.start()
    while not stop.wait(0.5) and not operator.lost.is_set():
        pass
    operator.stop()
    kube.close()
    return 1 if operator.lost.is_set() else 0
