"""The ``paca-otel`` command: demo, serve, config, rules, anomalies, token, report, --version."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from paca_otel._version import __version__
from paca_otel.analysis._cli import add_parser as add_anomalies_parser
from paca_otel.analysis._report_cli import add_parser as add_report_parser
from paca_otel.errors import PacaOtelError
from paca_otel.security._cli import add_token_parser


def _demo(args: argparse.Namespace) -> int:
    import socket

    import uvicorn

    from paca_otel._demo import create_app

    # Bind before anything starts: a busy port is one clear line (not a banner claiming the
    # demo runs, then uvicorn's error), and --port 0 shows the port actually chosen.
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    try:
        sock = socket.create_server((args.host, args.port), family=family)
    except (OSError, OverflowError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        print(f"paca-otel: cannot serve the demo on {args.host}:{args.port}: {reason}",
              file=sys.stderr)  # fmt: skip
        return 2
    host, port = sock.getsockname()[:2]
    from paca_otel.security import generate_token

    token = generate_token()  # printed once below, kept nowhere (only its hash, in memory)
    app = create_app(traffic=not args.no_traffic, admin_token=token)
    base = f"http://[{host}]:{port}" if family == socket.AF_INET6 else f"http://{host}:{port}"
    print(
        f"paca-otel demo on {base}\n"
        f"  dashboard        {base}/monitoring/   (sign in with the admin token below)\n"
        f"  API              {base}/monitoring/api/v1/metrics\n"
        f"  Prometheus       {base}/metrics\n"
        f"  API docs         {base}/docs\n"
        f"  admin token      {token}\n"
        "                   (made for this run, shown once: Authorization: Bearer <token>)\n"
        "Logs below are JSON lines with trace ids. Ctrl-C stops.",
        flush=True,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[sock])
    return 0 if server.started else 1


def _serve(args: argparse.Namespace) -> int:
    from paca_otel.web._app import serve

    return serve(host=args.host, port=args.port, prefix=args.prefix)


def _config(args: argparse.Namespace) -> int:
    from paca_otel.config import load_settings

    settings = load_settings()
    data = settings.masked()
    data["effective_exporters"] = {
        signal: list(settings.exporters(signal)) for signal in ("traces", "metrics", "logs")
    }
    print(json.dumps(data, indent=2, sort_keys=True, default=str))
    return 0


def _rules(args: argparse.Namespace) -> int:
    if args.rules_command == "check":
        from paca_otel._rules_cli import check, configured_channels
        from paca_otel.config import load_settings

        try:
            configured: set[str] | None = configured_channels(load_settings())
        except PacaOtelError as exc:  # the rules can still be checked without the settings
            print(f"paca-otel: settings not read, channel set-up not checked: {exc}",
                  file=sys.stderr)  # fmt: skip
            configured = None
        return check(args.file, configured=configured, custom_channels=args.channel)
    if args.rules_command == "export":
        from paca_otel._rules_cli import EXIT_USAGE, export, load_name_map

        name_map = None
        if args.name_map is not None:
            try:
                name_map = load_name_map(args.name_map)
            except PacaOtelError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return EXIT_USAGE
        return export(args.file, fmt=args.format, name_map=name_map)
    from paca_otel.alerting._rule_tests import main as run_tests

    return run_tests(args.file)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="paca-otel", description="OpenTelemetry monitoring for Python services."
    )
    parser.add_argument("--version", action="version", version=f"paca-otel {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the instrumented FastAPI demo service")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--no-traffic", action="store_true", help="no self-generated requests")
    demo.set_defaults(func=_demo)

    serve = sub.add_parser("serve", help="run the monitoring API and dashboard on their own")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8001)
    serve.add_argument("--prefix", default="/monitoring", help="where the API is mounted")
    serve.set_defaults(func=_serve)

    config = sub.add_parser("config", help="print the effective settings, secrets masked")
    config.set_defaults(func=_config)

    add_anomalies_parser(sub)
    add_report_parser(sub)

    rules = sub.add_parser("rules", help="check, test or export alert rule files")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True)
    check = rules_sub.add_parser("check", help="validate a rule file")
    check.add_argument("file")
    check.add_argument(
        "--channel",
        action="append",
        default=[],
        metavar="NAME",
        help="a custom channel the application registers in code (repeatable)",
    )
    test = rules_sub.add_parser("test", help="run rule unit tests (like promtool test rules)")
    test.add_argument("file")
    export = rules_sub.add_parser("export", help="write Prometheus alerting rules")
    export.add_argument("file")
    export.add_argument("--format", default="prometheus", choices=["prometheus"])
    export.add_argument(
        "--name-map",
        metavar="FILE",
        help="YAML mapping of metric names in the rules to Prometheus metric names"
        " (e.g. orders: orders_total); built-in aliases need none",
    )
    rules.set_defaults(func=_rules)
    add_token_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except PacaOtelError as exc:
        print(f"paca-otel: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
