"""The ``modelroute`` command: one entry point, a subcommand per job."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from modelroute import __version__


def _run(main: Coroutine[Any, Any, int]) -> int:
    """Run a coroutine on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    result: int = uvloop.run(main)
    return result


def _logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    from modelroute.router.redact import install_log_filter

    install_log_filter()  # no log line of any level may carry a credential


def cmd_router(args: argparse.Namespace) -> int:
    from modelroute.router.credentials import secrets_dir_from_env
    from modelroute.router.serve import serve

    _logging(args.log_level)
    secrets = Path(args.secrets_dir) if args.secrets_dir else secrets_dir_from_env()
    region = args.region or os.environ.get("MODELROUTE_REGION") or None
    return _run(serve(Path(args.config), region, args.host, args.port, secrets, args.admin_port))


def cmd_validate(args: argparse.Namespace) -> int:
    from modelroute.spec import SpecInvalid, load_route

    status = 0
    for path in args.paths:
        try:
            route = load_route(path)
        except SpecInvalid as exc:
            status = 1
            for error in exc.errors:
                print(f"{path}: {error}", file=sys.stderr)
            continue
        spec = route.spec
        counts = ", ".join(
            f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"
            for noun, items in (
                ("region", spec.regions),
                ("provider", spec.providers),
                ("model", spec.models),
            )
        )
        print(f"{path}: ModelRoute {route.name} is valid ({counts})")
    return status


def cmd_sim(args: argparse.Namespace) -> int:
    from modelroute.router.sim import SimBehaviour, run_sim

    _logging(args.log_level)
    try:
        behaviour = SimBehaviour(
            latency_ms=args.latency_ms,
            tokens=args.tokens,
            token_delay_ms=args.token_delay_ms,
            fail_rate=args.fail_rate,
            fail_status=args.fail_status,
            context_window=args.context_window,
            prefix_cache_ttl=args.prefix_cache_ttl,
        )
    except ValueError as exc:
        print(f"modelroute sim: {exc}", file=sys.stderr)
        return 2
    run_sim(args.host, args.port, behaviour)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from modelroute.router.demo import run_demo

    _logging(args.log_level)
    return _run(run_demo(args.host, args.port))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # render and operator parse their own arguments (they live with the operator).
    if argv and argv[0] in ("render", "operator"):
        from modelroute.operator import commands

        handler = commands.render_main if argv[0] == "render" else commands.operator_main
        code: int = handler(argv[1:])
        return code

    parser = argparse.ArgumentParser(
        prog="modelroute", description="Multi-region router for OpenAI-compatible LLM APIs."
    )
    parser.add_argument("--version", action="version", version=f"modelroute {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser, port: int) -> None:
        p.add_argument(
            "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
        )
        p.add_argument(
            "--port", type=int, default=port, help="port to listen on (default: %(default)s)"
        )
        p.add_argument("--log-level", default="info", help="debug, info, warning, error")

    p = sub.add_parser("router", help="serve the OpenAI API from a ModelRoute file")
    p.add_argument("--config", required=True, help="ModelRoute manifest (YAML)")
    p.add_argument(
        "--region", help="region this router runs in (env MODELROUTE_REGION; default: the first)"
    )
    p.add_argument(
        "--secrets-dir", help="where Secret files are mounted (env MODELROUTE_SECRETS_DIR)"
    )
    common(p, 8080)
    p.add_argument(
        "--admin-port",
        type=int,
        metavar="PORT",
        help="serve /healthz, /readyz, /metrics and /status on this port, and not on --port "
        "(default: on --port, with the API)",
    )
    p.set_defaults(func=cmd_router)

    p = sub.add_parser("validate", help="check ModelRoute files offline")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("sim", help="run a simulated OpenAI-compatible upstream")
    common(p, 9000)
    p.add_argument("--latency-ms", type=float, default=0.0, help="delay before the first byte")
    p.add_argument("--tokens", type=int, default=16, help="completion tokens (stream chunks)")
    p.add_argument("--token-delay-ms", type=float, default=0.0, help="delay between stream chunks")
    p.add_argument("--fail-rate", type=float, default=0.0, help="share of requests that fail (0-1)")
    p.add_argument("--fail-status", type=int, default=500, help="HTTP status of failures")
    p.add_argument(
        "--context-window",
        type=int,
        metavar="N",
        help="prompt plus max_tokens above N tokens: 400 context_length_exceeded (default: none)",
    )
    p.add_argument(
        "--prefix-cache-ttl",
        type=float,
        metavar="S",
        help="cache prompt prefixes for S seconds after their last use and report "
        "usage.prompt_tokens_details.cached_tokens (default: no cache)",
    )
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("demo", help="simulated upstreams and a router on localhost")
    common(p, 8080)
    p.set_defaults(func=cmd_demo)

    sub.add_parser(
        "render", help="print the Kubernetes objects for a ModelRoute (see render --help)"
    )
    sub.add_parser("operator", help="run the Kubernetes operator (see operator --help)")

    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
