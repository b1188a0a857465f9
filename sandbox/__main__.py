"""``python -m sandbox``: serve the WeChat sandbox until SIGINT or SIGTERM.

Secrets are read from the environment (WECHAT_APP_SECRET, WECHAT_PUSH_TOKEN,
WECHAT_PUSH_AES_KEY) so they stay out of the process list; flags override them.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType

from sandbox.model import DEFAULT_APPID, DEFAULT_SECRET, PUSH_FORMATS, PUSH_MODES
from sandbox.server import Sandbox


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="WeChat sandbox for wxsub")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--appid", default=env("WECHAT_APPID", DEFAULT_APPID))
    parser.add_argument("--secret", default=env("WECHAT_APP_SECRET", DEFAULT_SECRET), help=argparse.SUPPRESS)
    parser.add_argument("--token-lifetime", type=float, default=7200.0)
    parser.add_argument("--push-url", default=None)
    parser.add_argument("--push-token", default=env("WECHAT_PUSH_TOKEN"), help=argparse.SUPPRESS)
    parser.add_argument("--push-aes-key", default=env("WECHAT_PUSH_AES_KEY"), help=argparse.SUPPRESS)
    parser.add_argument("--push-mode", choices=PUSH_MODES, default="plain")
    parser.add_argument("--push-format", choices=PUSH_FORMATS, default="json")
    parser.add_argument("--no-seed", action="store_true", help="start without the seeded templates")
    parser.add_argument("--verbose", action="store_true", help="log method, path and errcode of each request")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        sandbox = Sandbox(
            appid=args.appid,
            secret=args.secret,
            host=args.host,
            port=args.port,
            token_lifetime=args.token_lifetime,
            push_url=args.push_url,
            push_token=args.push_token or None,
            push_aes_key=args.push_aes_key or None,
            push_mode=args.push_mode,
            push_format=args.push_format,
            seed=not args.no_seed,
            verbose=args.verbose,
        )
    except ValueError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    sandbox.start()
    print(f"sandbox listening on {sandbox.url}", flush=True)
    try:
        stop.wait()
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
