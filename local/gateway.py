"""The HTTP API on a local port: route matching, IAM signatures, payload format 2.0 both ways.

What API Gateway does between the socket and the function: pick the most specific route (exact
paths before ``{param}`` before ``{proxy+}``, a method before ``ANY``, ``$default`` last), check
SigV4 on ``AWS_IAM`` routes, build the version 2.0 event, and turn the function's answer into an
HTTP response, inferring 200 JSON when the function returns no ``statusCode``. Its own errors keep
API Gateway's shape: ``{"message": "Not Found"}``, ``{"message": "Forbidden"}``,
``{"message": "Internal Server Error"}``.

The same port also answers Lambda's ``Invoke`` API (``POST /2015-03-31/functions/{name}/invocations``,
SigV4 for ``lambda``, the function named by its logical id), as ``sam local start-lambda`` does: an
operator's tool (``wxsub token force-refresh``) invokes a function with boto3's Lambda client the same
way here as on a deployed stack.
"""

from __future__ import annotations

import base64
import binascii
import errno
import json
import re
import secrets as token_source
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote

from local import sigv4
from local.model import Route
from local.template import ACCOUNT_ID
from local.workers import LogSink, Outcome

MAX_BODY = 10 * 1024 * 1024
TEXT_TYPES = re.compile(r"^(text/|application/(json|xml|javascript|x-www-form-urlencoded)|.*\+(json|xml))")
Invoke = Callable[[str, dict[str, Any]], Outcome]
LAMBDA_INVOKE = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")


class PortInUse(OSError):
    def __init__(self, port: int) -> None:
        super().__init__(f"port {port} is already in use")
        self.port = port


@dataclass(frozen=True)
class _Compiled:
    route: Route
    pattern: re.Pattern[str]
    rank: tuple[int, int, int, int]


def compile_routes(routes: Sequence[Route]) -> list[_Compiled]:
    compiled = []
    for route in routes:
        if route.path == "$default":
            compiled.append(_Compiled(route, re.compile(r"^.*$"), (9, 0, 1, 0)))
            continue
        pattern = "^"
        for segment in route.path.strip("/").split("/"):
            if match := re.fullmatch(r"\{(\w+)\+\}", segment):
                pattern += f"/(?P<{match.group(1)}>.+)"
            elif match := re.fullmatch(r"\{(\w+)\}", segment):
                pattern += f"/(?P<{match.group(1)}>[^/]+)"
            else:
                pattern += "/" + re.escape(segment)
        greedy, params = route.path.count("+}"), route.path.count("{")
        rank = (greedy, params, int(route.method == "ANY"), -len(route.path))
        compiled.append(_Compiled(route, re.compile(pattern + "/?$" if pattern != "^" else "^/?$"), rank))
    return sorted(compiled, key=lambda c: c.rank)


def match_route(routes: Sequence[_Compiled], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    for candidate in routes:
        if candidate.route.method not in (method, "ANY"):
            continue
        found = candidate.pattern.match(path)
        if found:
            return candidate.route, found.groupdict()
    return None


def http_event(
    route: Route,
    path_parameters: Mapping[str, str],
    request: RequestData,
    authorizer: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The payload format 2.0 event API Gateway hands a function."""
    headers, cookies = _headers_and_cookies(request)
    query: dict[str, str] = {}
    for key, value in parse_qsl(request.raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    now = datetime.now(UTC)
    host = headers.get("host", "127.0.0.1").split(":")[0]
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": request.method,
                "path": request.raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": request.source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request.request_id,
            "routeKey": route.key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = {k: unquote(v) for k, v in path_parameters.items()}
    if authorizer:
        event["requestContext"]["authorizer"] = authorizer
    if request.body:
        event["body"], event["isBase64Encoded"] = _body(
            request.body, headers.get("content-type", "text/plain")
        )
    return event


def _headers_and_cookies(request: RequestData) -> tuple[dict[str, str], list[str]]:
    """Lowercased headers (repeats joined by commas) plus API Gateway's own; cookies apart."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        lname = name.lower()
        if lname == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
        else:
            headers[lname] = f"{headers[lname]},{value}" if lname in headers else value
    forwarded = headers.get("x-forwarded-for")
    headers["x-forwarded-for"] = f"{forwarded}, {request.source_ip}" if forwarded else request.source_ip
    headers["x-forwarded-port"] = str(request.port)
    headers["x-forwarded-proto"] = "http"
    headers["x-amzn-trace-id"] = f"Root=1-{int(time.time()):08x}-{token_source.token_hex(12)}"
    return headers, cookies


def _body(body: bytes, content_type: str) -> tuple[str, bool]:
    """Text as it is; anything else (or text that is not UTF-8) base64-encoded."""
    if TEXT_TYPES.match(content_type.lower()):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode(), True


def http_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body from a function's answer, as API Gateway maps payload 2.0."""
    if not (isinstance(result, dict) and "statusCode" in result):
        return 200, [("content-type", "application/json")], json.dumps(result).encode()
    status, body = result["statusCode"], result.get("body")
    if not isinstance(status, int) or not 100 <= status <= 599 or not isinstance(body, str | None):
        raise ValueError("malformed Lambda proxy response")
    headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
    headers += [("set-cookie", str(cookie)) for cookie in result.get("cookies") or []]
    if body is None:
        return status, headers, b""
    if result.get("isBase64Encoded"):
        return status, headers, base64.b64decode(body, validate=True)
    return status, headers, body.encode()


@dataclass(frozen=True)
class RequestData:
    method: str
    raw_path: str
    raw_query: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str
    port: int
    request_id: str


class Gateway:
    """A threaded HTTP server bound at construction (so a busy port fails early), serving on :meth:`start`."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        region: str,
        secrets: Mapping[str, str],
        log: LogSink,
    ) -> None:
        try:
            self._server = _Server((host, port), self)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(port) from exc
            raise
        self.host = host
        self.port = int(self._server.server_address[1])
        self.url = f"http://{self.host}:{self.port}"
        self.region = region
        self.secrets = dict(secrets)
        self.log = log
        self.routes: list[_Compiled] = []
        self.invoke: Invoke | None = None
        self._thread: threading.Thread | None = None

    def start(self, routes: Sequence[Route], invoke: Invoke) -> None:
        self.routes = compile_routes(routes)
        self.invoke = invoke
        self._thread = threading.Thread(target=self._server.serve_forever, name="gateway", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def handle(self, request: RequestData) -> tuple[int, list[tuple[str, str]], bytes, str]:
        """The response to one request, and what the access log names as its target."""
        invoked = LAMBDA_INVOKE.match(unquote(request.raw_path))
        if invoked is not None and request.method == "POST":
            function = invoked.group(1)
            return (*self._invoke_function(function, request), function)
        found = match_route(self.routes, request.method, unquote(request.raw_path))
        if found is None:
            return (*_message(404, "Not Found"), "-")
        route, params = found
        authorizer = None
        if route.iam:
            verdict = self._verify(request, "execute-api")
            if verdict.access_key is None:
                return (*_message(403, verdict.message or "Forbidden"), route.function)
            authorizer = {"iam": _iam_identity(verdict.access_key)}
        assert self.invoke is not None
        outcome = self.invoke(route.function, http_event(route, params, request, authorizer))
        if not outcome.ok:
            return (*_message(500, "Internal Server Error"), route.function)
        try:
            return (*http_response(outcome.result), route.function)
        except (ValueError, binascii.Error, TypeError):
            self.log(f"[gateway] {route.function} returned a malformed response")
            return (*_message(500, "Internal Server Error"), route.function)

    def _verify(self, request: RequestData, service: str) -> sigv4.Verdict:
        return sigv4.verify(
            request.method,
            request.raw_path,
            request.raw_query,
            request.headers,
            request.body,
            secrets=self.secrets,
            region=self.region,
            service=service,
        )

    def _invoke_function(
        self, function: str, request: RequestData
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Lambda's Invoke (RequestResponse): the function's result, or its error as Lambda reports it."""
        verdict = self._verify(request, "lambda")
        if verdict.access_key is None:
            return _lambda_error(403, "InvalidSignatureException", verdict.message or "Forbidden")
        kind = next(
            (v for k, v in request.headers if k.lower() == "x-amz-invocation-type"), "RequestResponse"
        )
        if kind != "RequestResponse":
            return _lambda_error(
                400, "InvalidParameterValueException", "the local stack invokes RequestResponse only"
            )
        try:
            event = json.loads(request.body or b"{}")
        except ValueError:
            return _lambda_error(
                400, "InvalidRequestContentException", "Could not parse request body into json"
            )
        assert self.invoke is not None
        try:
            outcome = self.invoke(function, event)
        except KeyError:
            arn = f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{function}"
            return _lambda_error(404, "ResourceNotFoundException", f"Function not found: {arn}")
        headers = [("content-type", "application/json"), ("x-amz-executed-version", "$LATEST")]
        if not outcome.ok:
            body = {"errorMessage": outcome.error_message, "errorType": outcome.error_type}
            return 200, [*headers, ("x-amz-function-error", "Unhandled")], json.dumps(body).encode()
        return 200, headers, json.dumps(outcome.result).encode()


def _lambda_error(status: int, kind: str, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [("content-type", "application/json"), ("x-amzn-errortype", kind)]
    return status, headers, json.dumps({"Type": "User", "message": message}).encode()


def _iam_identity(access_key: str) -> dict[str, Any]:
    return {
        "accessKey": access_key,
        "accountId": ACCOUNT_ID,
        "callerId": access_key,
        "cognitoIdentity": None,
        "principalOrgId": None,
        "userArn": f"arn:aws:iam::{ACCOUNT_ID}:user/local",
        "userId": access_key,
    }


def _message(status: int, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("content-type", "application/json")], json.dumps({"message": message}).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # the listen backlog: the default 5 reset connections when 50 clients connected at once
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], gateway: Gateway) -> None:
        super().__init__(address, _Handler)
        self.gateway = gateway


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "wxsub-local"
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        return self.server_version

    def _serve(self) -> None:
        assert isinstance(self.server, _Server)
        gateway = self.server.gateway
        started = time.perf_counter()
        request_id = token_source.token_urlsafe(12)
        raw_path, _, raw_query = self.path.partition("?")
        body = self._body()
        if body is None:
            status, headers, payload, target = (*_message(413, "Request Entity Too Large"), "-")
        else:
            request = RequestData(
                method=self.command,
                raw_path=raw_path,
                raw_query=raw_query,
                headers=list(self.headers.items()),
                body=body,
                source_ip=self.client_address[0],
                port=gateway.port,
                request_id=request_id,
            )
            try:
                status, headers, payload, target = gateway.handle(request)
            except Exception as exc:
                gateway.log(f"[gateway] {self.command} {raw_path}: {type(exc).__name__}: {exc}")
                status, headers, payload, target = (*_message(500, "Internal Server Error"), "-")
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("apigw-requestid", request_id)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        elapsed = (time.perf_counter() - started) * 1000
        gateway.log(f"[gateway] {self.command} {raw_path} -> {target} {status} ({elapsed:.0f} ms)")

    def _body(self) -> bytes | None:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            total = 0
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                total += size
                if total > MAX_BODY:
                    self.close_connection = True
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            return None
        return self.rfile.read(length) if length else b""

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: :meth:`_serve` logs each request without its query string or headers."""
