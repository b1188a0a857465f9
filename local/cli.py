"""The whole stack in the foreground until Ctrl-C or SIGTERM (what ``python -m local`` runs)."""

from __future__ import annotations

import argparse
import os
import sys

from local import running
from local.gateway import PortInUse
from local.stack import DEFAULT_CREDENTIALS, LocalStack
from local.stopping import StopRequest
from local.template import TemplateError


def _key_value(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not key or not equals:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local", description=__doc__)
    parser.add_argument("--template", default="template.yaml", help="the SAM template (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT") or 3000),
        help="the API's port (default: $PORT or 3000)",
    )
    parser.add_argument(
        "--parameter-overrides",
        nargs="*",
        default=[],
        type=_key_value,
        metavar="KEY=VALUE",
        help="template parameter values, as for sam deploy",
    )
    parser.add_argument(
        "--no-schedules", action="store_true", help="neither run nor schedule the scheduled functions"
    )
    parser.add_argument("--no-pollers", action="store_true", help="do not poll the SQS event sources")
    return parser.parse_args(argv)


def banner(stack: LocalStack) -> str:
    """Where each part listens, and what the template put there."""
    d = stack.description
    width = max((len(r.key) for r in d.routes), default=0)
    lines = [f"wxsub local stack from {stack.template.name}", f"  API      {stack.api_url}"]
    for route in d.routes:
        auth = "  IAM (SigV4, service execute-api)" if route.iam else ""
        lines.append(f"             {route.key:<{width}}  {route.function}{auth}")
    lines.append(f"  AWS      {stack.aws_endpoint}  (moto; region {stack.region})")
    if stack.sandbox_url:
        lines.append(f"  WeChat   {stack.sandbox_url}  (sandbox, AppID {stack.appid})")
    else:
        lines.append(f"  WeChat   {d.parameters.get('WeChatApiBase', '-')}  (AppID {stack.appid})")
    for s in d.schedules:
        lines.append(f"  schedule {s.function}.{s.event} {s.expression}{'' if s.enabled else ' (disabled)'}")
    for q in d.queue_sources:
        at_once = stack.queue_concurrency(q)
        lines.append(
            f"  queue    {q.queue_url} -> {q.function} (batch {q.batch_size}"
            + (f", {at_once} at once)" if at_once > 1 else ")")
        )
    for bus in d.event_buses:
        lines.append(f"  bus      {bus.name}  (each event printed as [events] <detail-type> <detail>)")
    key = stack.credentials[0]
    source = (
        "the defaults in docs/local.md"
        if stack.credentials == DEFAULT_CREDENTIALS
        else "your AWS_* variables"
    )
    lines.append(f"IAM routes accept access key {key} ({source}).")
    lines.append(
        f"export WXSUB_API_URL={stack.api_url} WXSUB_SANDBOX_URL={stack.sandbox_url or ''}"
        f" WXSUB_AWS_URL={stack.aws_endpoint}"
    )
    lines.append("Ctrl-C stops everything.")
    return "\n".join(lines)


def main(stop: StopRequest, argv: list[str] | None = None) -> int:
    """Run the stack until ``stop`` (installed as the SIGINT and SIGTERM handler) is requested."""
    args = _arguments(argv)
    overrides = dict(args.parameter_overrides)
    stack = LocalStack(
        args.template,
        port=args.port,
        host=args.host,
        parameters=overrides,
        schedules=not args.no_schedules,
        pollers=not args.no_pollers,
        echo=True,
    )
    try:
        stack.start()
    except PortInUse as exc:
        print(
            f"local: port {exc.port} is already in use: stop what listens there or set PORT", file=sys.stderr
        )
        return 1
    except (TemplateError, FileNotFoundError, ImportError) as exc:
        print(f"local: {exc}", file=sys.stderr)
        return 1
    record = running.announce(stack, args.port) if args.port else None
    if not stop.requested:
        print(banner(stack), flush=True)
    try:
        stop.wait()
        print("\nstopping...", flush=True)
    finally:
        if record is not None:
            record.unlink(missing_ok=True)
        stack.stop()
    print("stopped", flush=True)
    return 0
