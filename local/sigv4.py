"""AWS Signature Version 4 for ``execute-api``: the check IAM-authorized routes make, and a signer.

:func:`verify` is what API Gateway does before invoking a route with ``Authorizer: AWS_IAM``:
it recomputes the signature from the request as received (the body's real hash, never a
client-supplied one) and answers with API Gateway's own messages. :class:`SigV4Auth` signs
``httpx`` requests with botocore's canonicalization, so the two sides are independent
implementations checking each other.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote, unquote_plus

import httpx
from botocore.auth import SigV4Auth as _BotocoreSigV4
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SERVICE = "execute-api"
MAX_SKEW = timedelta(minutes=15)
STAMP = "%Y%m%dT%H%M%SZ"
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)
UNKNOWN_KEY = "The security token included in the request is invalid."
_AUTH = re.compile(r"^AWS4-HMAC-SHA256 (.*)$")


@dataclass(frozen=True)
class Verdict:
    """``access_key`` when the signature holds, else API Gateway's 403 ``message``."""

    access_key: str | None = None
    message: str | None = None


class _Refused(Exception):
    """API Gateway's 403 ``message`` for a request that does not pass."""


def verify(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    *,
    secrets: Mapping[str, str],
    region: str,
    now: datetime | None = None,
    service: str = SERVICE,
) -> Verdict:
    """Check a request's ``Authorization`` header against the known access keys and their secrets.

    ``service`` is the signing scope's service: ``execute-api`` for the API's routes, ``lambda``
    for the local stack's Invoke endpoint.
    """
    header_map: dict[str, list[str]] = {}
    for name, value in headers:
        header_map.setdefault(name.lower(), []).append(value)
    try:
        parts = _parts(header_map)
        access_key = _check_scope(parts, secrets, region, now or datetime.now(UTC), service)
        signed = parts["SignedHeaders"].split(";")
        if "host" not in signed or any(name not in header_map for name in signed):
            raise _Refused(MISMATCH)
        canonical = "\n".join(
            [
                method.upper(),
                _canonical_path(raw_path),
                _canonical_query(raw_query),
                "".join(f"{n}:{','.join(' '.join(v.split()) for v in header_map[n])}\n" for n in signed),
                ";".join(signed),
                hashlib.sha256(body).hexdigest(),
            ]
        )
        expected = signature(secrets[access_key], parts["X-Amz-Date"], region, canonical, service)
        if not hmac.compare_digest(expected, parts["Signature"]):
            raise _Refused(MISMATCH)
    except _Refused as refused:
        return Verdict(message=str(refused))
    return Verdict(access_key=access_key)


def _parts(header_map: Mapping[str, list[str]]) -> dict[str, str]:
    authorization = (header_map.get("authorization") or [""])[0]
    if not authorization:
        raise _Refused("Forbidden")
    parts = _authorization_parts(authorization)
    parts["X-Amz-Date"] = (header_map.get("x-amz-date") or [""])[0]
    problem = _missing(parts, parts["X-Amz-Date"])
    if problem:
        raise _Refused(problem)
    return parts


def _check_scope(
    parts: Mapping[str, str], secrets: Mapping[str, str], region: str, now: datetime, service: str
) -> str:
    access_key, date, scope_region, scoped, terminator = (parts["Credential"].split("/") + [""] * 5)[:5]
    if access_key not in secrets:
        raise _Refused(UNKNOWN_KEY)
    if scoped != service or terminator != "aws4_request":
        raise _Refused(f"Credential should be scoped to correct service: '{service}'. ")
    if scope_region != region:
        raise _Refused(f"Credential should be scoped to a valid region, not '{scope_region}'. ")
    skew = _skew(parts["X-Amz-Date"], date, now)
    if skew:
        raise _Refused(skew)
    return access_key


def signature(secret: str, stamp: str, region: str, canonical_request: str, service: str = SERVICE) -> str:
    """The hex signature of a canonical request, per the SigV4 key derivation."""
    scope = f"{stamp[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = f"AWS4{secret}".encode()
    for part in (stamp[:8], region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _authorization_parts(header: str) -> dict[str, str]:
    match = _AUTH.match(header.strip())
    if not match:
        return {}
    parts = {}
    for item in match.group(1).split(","):
        key, _, value = item.strip().partition("=")
        parts[key] = value
    return parts


def _missing(parts: Mapping[str, str], stamp: str) -> str | None:
    needs = [
        f"Authorization header requires '{key}' parameter."
        for key in ("Credential", "Signature", "SignedHeaders")
        if not parts.get(key)
    ]
    if not stamp:
        needs.append("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    return " ".join(needs) or None


def _skew(stamp: str, scope_date: str, now: datetime) -> str | None:
    try:
        signed_at = datetime.strptime(stamp, STAMP).replace(tzinfo=UTC)
    except ValueError:
        return "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    if scope_date != stamp[:8]:
        return (
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{scope_date}' != '{stamp[:8]}', from '{stamp}'."
        )
    if signed_at < now - MAX_SKEW:
        return (
            f"Signature expired: {stamp} is now earlier than {(now - MAX_SKEW).strftime(STAMP)} "
            f"({now.strftime(STAMP)} - 15 min.)"
        )
    if signed_at > now + MAX_SKEW:
        return (
            f"Signature not yet current: {stamp} is still later than {(now + MAX_SKEW).strftime(STAMP)} "
            f"({now.strftime(STAMP)} + 15 min.)"
        )
    return None


def _canonical_path(raw_path: str) -> str:
    segments = [s for s in raw_path.split("/") if s and s != "."]
    kept: list[str] = []
    for segment in segments:
        if segment == "..":
            kept = kept[:-1]
        else:
            kept.append(segment)
    path = "/" + "/".join(kept) + ("/" if raw_path.endswith("/") and kept else "")
    return quote(path, safe="/~")


def _sigv4_query(form_query: str) -> str:
    """A form-encoded query ("+" for a space) in the encoding SigV4 signs: RFC 3986, %20."""
    pairs = (pair.partition("=") for pair in filter(None, form_query.split("&")))
    return "&".join(
        f"{quote(unquote_plus(key), safe='-_.~')}{sep}{quote(unquote_plus(value), safe='-_.~')}"
        for key, sep, value in pairs
    )


def _canonical_query(raw_query: str) -> str:
    pairs = []
    for pair in filter(None, raw_query.split("&")):
        key, _, value = pair.partition("=")
        pairs.append((quote(unquote(key), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


class SigV4Auth(httpx.Auth):
    """Signs each request for ``execute-api`` (an IAM-authorized API Gateway route).

    ``clock`` exists so a test can sign at another time; the default is now.
    """

    requires_request_body = True
    unsigned_headers = frozenset(
        {
            "accept",
            "accept-encoding",
            "connection",
            "content-length",
            "user-agent",
            "expect",
            "transfer-encoding",
        }
    )

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        *,
        session_token: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._credentials = Credentials(access_key, secret_key, session_token)
        self._region = region
        self._clock = clock

    def __repr__(self) -> str:
        return f"SigV4Auth({self._credentials.access_key!r}, <secret>, {self._region!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # httpx writes a space in the query as "+"; SigV4 signs the query as sent and wants %20
        # (AWS reads "+" otherwise), so the query is put in that form before it is signed
        request.url = request.url.copy_with(query=_sigv4_query(request.url.query.decode()).encode() or None)
        stamp = self._clock().astimezone(UTC).strftime(STAMP)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in self.unsigned_headers}
        headers.pop("authorization", None)
        headers["X-Amz-Date"] = stamp
        if self._credentials.token:
            headers["X-Amz-Security-Token"] = self._credentials.token
        aws = AWSRequest(method=request.method, url=str(request.url), data=request.content, headers=headers)
        aws.context["timestamp"] = stamp
        signer = _BotocoreSigV4(self._credentials, SERVICE, self._region)
        canonical = signer.canonical_request(aws)
        signed = signer.signature(signer.string_to_sign(aws, canonical), aws)
        signed_headers = signer.signed_headers(signer.headers_to_sign(aws))
        request.headers["X-Amz-Date"] = stamp
        if self._credentials.token:
            request.headers["X-Amz-Security-Token"] = self._credentials.token
        request.headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={signer.scope(aws)}, "
            f"SignedHeaders={signed_headers}, Signature={signed}"
        )
        yield request
