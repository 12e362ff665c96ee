"""``modelroute render`` and ``modelroute operator``: argv in, exit code out.

The CLI passes the arguments after the subcommand; nothing here prints
tracebacks for a user's mistake: a bad spec is a list of field paths on
stderr and exit code 1, a bad flag is argparse's usage and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from modelroute.operator.checks import validate
from modelroute.operator.render import render, to_yaml
from modelroute.operator.settings import DEFAULT_RESYNC_SECONDS, ROUTER_IMAGE_ENV, OperatorSettings
from modelroute.spec import SpecInvalid, parse_route, read_route_document

DEFAULT_LIVENESS = "http://0.0.0.0:8081/healthz"


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
    objects = render(document, parse_route(document), OperatorSettings.from_env(), namespace)
    sys.stdout.write(to_yaml(objects))
    return 0


def operator_main(argv: list[str]) -> int:
    """Run the operator until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(
        prog="modelroute operator",
        description="Reconcile ModelRoute resources into per-region routers. Run exactly one "
        "replica: it works standalone (no kopf peering).",
    )
    parser.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="watch this namespace (repeatable; default: all namespaces)",
    )
    parser.add_argument(
        "--resync",
        type=float,
        default=DEFAULT_RESYNC_SECONDS,
        metavar="SECONDS",
        help="re-check every route this often: repairs drift, refreshes status (default: %(default)s)",
    )
    parser.add_argument(
        "--liveness",
        default=DEFAULT_LIVENESS,
        metavar="URL",
        help="serve the liveness probe here (default: %(default)s)",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log every handler step")
    args = _parse(parser, argv)
    if isinstance(args, int):
        return args
    if args.resync <= 0:
        parser.print_usage(sys.stderr)
        print("modelroute operator: --resync must be positive", file=sys.stderr)
        return 2

    import kopf  # the operator extra; `modelroute render` works without it

    from modelroute.operator.handlers import build_registry

    settings = OperatorSettings.from_env(resync_seconds=args.resync)
    kopf.configure(verbose=args.verbose)
    kopf.run(
        registry=build_registry(settings),
        standalone=True,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness,
    )
    return 0
