"""The WeChat sandbox: an HTTP app standing in for api.weixin.qq.com (see sandbox/README.md).

``Sandbox(...).start()`` serves the WeChat endpoints and the ``/sandbox/...`` control endpoints
on a free loopback port from a daemon thread; ``python -m sandbox`` runs the same app from the
command line.
"""

from __future__ import annotations

import re
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox import control, newtmpl, push, wechat
from sandbox.errors import WeChatError, error_body
from sandbox.faults import lost_answer
from sandbox.model import (
    DEFAULT_APPID,
    DEFAULT_SECRET,
    SEEDED_LONG_TERM,
    SEEDED_ONE_TIME,
    SEEDED_ONE_TIME_2,
    SEEDED_ONE_TIME_3,
    Config,
    Fault,
)
from sandbox.state import State
from sandbox.wire import ControlError, Reply, Request, json_reply, not_found

__all__ = [
    "DEFAULT_APPID",
    "DEFAULT_SECRET",
    "SEEDED_LONG_TERM",
    "SEEDED_ONE_TIME",
    "SEEDED_ONE_TIME_2",
    "SEEDED_ONE_TIME_3",
    "SEEDED_TEMPLATES",
    "Sandbox",
]

SEEDED_TEMPLATES = (SEEDED_ONE_TIME, SEEDED_ONE_TIME_2, SEEDED_ONE_TIME_3, SEEDED_LONG_TERM)

WeChatHandler = Callable[[State, Request], Reply]
ControlHandler = Callable[[State, Request, str | None], Reply]

WECHAT_ROUTES: dict[str, WeChatHandler] = {
    "/sns/jscode2session": wechat.jscode2session,
    "/cgi-bin/token": wechat.get_token,
    "/cgi-bin/stable_token": wechat.stable_token,
    "/cgi-bin/message/subscribe/send": wechat.send,
    "/wxaapi/newtmpl/gettemplate": wechat.gettemplate,
    "/wxaapi/newtmpl/getcategory": newtmpl.getcategory,
    "/wxaapi/newtmpl/getpubtemplatetitles": newtmpl.getpubtemplatetitles,
    "/wxaapi/newtmpl/getpubtemplatekeywords": newtmpl.getpubtemplatekeywords,
    "/wxaapi/newtmpl/addtemplate": newtmpl.addtemplate,
    "/wxaapi/newtmpl/deltemplate": newtmpl.deltemplate,
}


@dataclass(frozen=True)
class _Route:
    methods: frozenset[str]
    pattern: re.Pattern[str]
    handler: ControlHandler


def _route(methods: str, pattern: str, handler: ControlHandler) -> _Route:
    return _Route(frozenset(methods.split()), re.compile(pattern), handler)


CONTROL_ROUTES = (
    _route("POST", r"/sandbox/users", control.create_user),
    _route("GET", r"/sandbox/users/([^/]+)", control.get_user),
    _route("POST", r"/sandbox/login", control.login),
    _route("POST", r"/sandbox/subscribe", control.subscribe),
    _route("POST", r"/sandbox/change", control.change),
    _route("GET", r"/sandbox/inbox", control.inbox),
    _route("GET", r"/sandbox/calls", control.calls),
    _route("GET POST DELETE", r"/sandbox/faults", control.faults),
    _route("POST", r"/sandbox/tokens/invalidate", control.invalidate_tokens),
    _route("GET POST", r"/sandbox/templates", control.templates),
    _route("DELETE", r"/sandbox/templates/([^/]+)", control.templates),
    _route("GET POST", r"/sandbox/config", control.config),
    _route("GET", r"/sandbox/pushes", control.pushes),
    _route("POST", r"/sandbox/reset", control.reset),
    _route("GET POST", r"/sandbox/clock", control.clock),
)


class App:
    """Routes a Request to a WeChat or control handler under the state lock; applies faults."""

    def __init__(self, state: State) -> None:
        self.state = state

    def handle(self, req: Request) -> Reply:
        if req.path == "/sandbox/verify":
            return self._verify(req)
        if req.path.startswith("/sandbox/"):
            return self._control(req)
        return self._wechat(req)

    def _wechat(self, req: Request) -> Reply:
        state = self.state
        api = WECHAT_ROUTES.get(req.path)
        with state.lock:
            if api is None:
                reply = not_found()
            else:
                fault = state.faults.take(req.path)
                if fault is None:
                    reply = self._answer(api, req)
                else:
                    reply = self._faulted(fault, self._answer(api, req) if fault.deliver else None)
            state.record_call(req.method, req.path, reply.errcode)
            reply.hang += state.config.latency
            return reply

    def _answer(self, api: WeChatHandler, req: Request) -> Reply:
        try:
            return api(self.state, req)
        except WeChatError as exc:
            return self._error(exc)

    def _error(self, error: WeChatError) -> Reply:
        return json_reply(error_body(error, self.state.now()), errcode=error.errcode, wechat=True)

    def _faulted(self, fault: Fault, delivered: Reply | None) -> Reply:
        """The answer under ``fault``; ``delivered`` is the real answer when the call took effect.

        A broken answer keeps the real errcode (None when nothing took effect) for the call log.
        """
        if fault.answer is not None:
            reply = lost_answer(fault.answer, delivered or self._error(WeChatError(-1)))
            if delivered is not None:
                reply.errcode, reply.after = delivered.errcode, delivered.after
        elif delivered is None or fault.errcode is not None:
            reply = self._error(WeChatError(-1 if fault.errcode is None else fault.errcode))
            if delivered is not None:
                reply.after = delivered.after
        else:
            reply = delivered
        reply.hang = fault.hang
        return reply

    def _control(self, req: Request) -> Reply:
        for route in CONTROL_ROUTES:
            match = route.pattern.fullmatch(req.path)
            if match is None:
                continue
            if req.method not in route.methods:
                return json_reply({"error": f"method {req.method} not allowed"}, 405)
            arg = match.group(1) if match.groups() else None
            try:
                with self.state.lock:
                    return route.handler(self.state, req, arg)
            except ControlError as exc:
                return json_reply({"error": exc.message}, exc.status)
        return not_found()

    def _verify(self, req: Request) -> Reply:
        """Run WeChat's URL check against the configured push URL (no lock held while waiting)."""
        if req.method != "POST":
            return json_reply({"error": f"method {req.method} not allowed"}, 405)
        with self.state.lock:
            config = self.state.config
        if config.push_url is None:
            return json_reply({"error": "no push_url configured"}, 400)
        echostr = str(time.time_ns())
        return json_reply(push.verify_url(config, echostr, config.push_timeout))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: App, verbose: bool) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.app = app
        self.verbose = verbose


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "wxsub-sandbox"
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        split = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(split.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        try:
            reply = self.server.app.handle(Request(self.command, split.path, query, body))
        except Exception:
            traceback.print_exc(file=sys.stderr)
            reply = json_reply({"error": "sandbox internal error"}, 500)
        if self.server.verbose:
            line = f"sandbox {self.command} {split.path} -> {reply.status} errcode={reply.errcode}\n"
            sys.stderr.write(line)
        if reply.hang:
            time.sleep(reply.hang)
        try:
            self._write(reply)
        except OSError:
            self.close_connection = True
        finally:
            for step in reply.after:
                step()

    def _write(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body if reply.cut is None else reply.body[: reply.cut])
        self.wfile.flush()
        if reply.cut is not None:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the default line includes query strings, which carry secrets and tokens."""


class Sandbox:
    """A WeChat sandbox on ``host:port`` (0 = a free port). Usable as a context manager.

    The constructor takes the push settings of the mini program admin (URL, Token,
    EncodingAESKey, mode ``plain``/``compatible``/``safe``, format ``json``/``xml``); everything
    can be changed later through ``POST /sandbox/config``. ``token_lifetime`` (seconds) replaces
    WeChat's 7200 so tests can expire tokens quickly.
    """

    def __init__(
        self,
        *,
        appid: str = DEFAULT_APPID,
        secret: str = DEFAULT_SECRET,
        host: str = "127.0.0.1",
        port: int = 0,
        token_lifetime: float = 7200,
        push_url: str | None = None,
        push_token: str | None = None,
        push_aes_key: str | None = None,
        push_mode: str = "plain",
        push_format: str = "json",
        seed: bool = True,
        pages: list[str] | None = None,
        daily_quota: int | None = None,
        push_timeout: float = 5.0,
        verbose: bool = False,
    ) -> None:
        config = Config(
            appid=appid,
            secret=secret,
            token_lifetime=float(token_lifetime),
            push_url=push_url,
            push_token=push_token,
            push_aes_key=push_aes_key,
            push_mode=push_mode,
            push_format=push_format,
            pages=pages,
            daily_quota=daily_quota,
            push_timeout=push_timeout,
        )
        self.state = State(config, seed)
        self.host = host
        self.port = port
        self._verbose = verbose
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:54321``."""
        if self._server is None:
            raise RuntimeError("sandbox not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> Sandbox:
        if self._server is not None:
            return self
        self._server = _Server((self.host, self.port), App(self.state), self._verbose)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="sandbox-http", daemon=True
        )
        self._thread.start()
        self.state.pusher.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.state.pusher.stop()
        self._server = None
        self._thread = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def advance_clock(self, seconds: float) -> None:
        """Move the sandbox clock forward (codes and tokens age; real time does not)."""
        with self.state.lock:
            self.state.offset += seconds

    def wait_for_pushes(self, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until every queued push has been delivered or has failed; return all push records."""
        self.state.pusher.wait_idle(timeout)
        with self.state.lock:
            return [record.to_json() for record in self.state.pushes]

    def drain_pushes(self, timeout: float) -> list[dict[str, Any]]:
        """Like :meth:`wait_for_pushes`, but raise ``TimeoutError`` if pushes are still queued."""
        if not self.state.pusher.wait_idle(timeout):
            raise TimeoutError(f"the sandbox still had pushes queued after {timeout:.0f} s")
        return self.wait_for_pushes(timeout=0)
