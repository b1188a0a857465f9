"""Fuzzing ``POST /wechat/push``: nothing forged or malformed is accepted, nothing earns a 5xx,
and the push function's memory stays under twice its idle size.

Every case breaks what makes a push authentic or readable, and nothing else: random and mutated
bodies under a valid plaintext signature, wrong signatures, timestamps and nonces (a nonce replayed
from a push already applied included), truncated, padded and bit-flipped ciphertexts whose
``msg_signature`` is made to match, ciphertexts for another AppID or under another key, XML bombs
and floods, lone surrogates. So every answer must be a 4xx JSON error, and the user the pushes name
must end with no grant. The cases are drawn from a seeded generator (the seed is in the results).

The function runs on a stack of its own, so its worker process is the one that served a single
valid push before the fuzz (its idle size) and every fuzzed push after (its peak, ``VmHWM``).
"""

from __future__ import annotations

import base64
import json
import os
import random
import string
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import SCALE, Transcript, json_error, loud_stack, unsigned
from wx_flows import LONG_TERM, ONE_TIME, grants, login, popup_event

from bench.reliability import PUSH_FUZZ, PUSH_MEMORY
from local.stack import LocalStack
from sandbox import crypto

pytestmark = [pytest.mark.integration, pytest.mark.timeout(SCALE.timeout)]
MB = 1024 * 1024
JSON = "application/json"
XML = "text/xml"


@dataclass
class Push:
    kind: str
    query: dict[str, str]
    body: bytes
    content_type: str = JSON


@dataclass
class Context:
    """What a forger would need, and what the fuzz has to break: the configured push secrets."""

    token: str
    aes_key: str
    appid: str
    victim: str
    rng: random.Random
    replay: Callable[[], dict[str, str]]
    seen: Counter[str] = field(default_factory=Counter)

    def now(self) -> int:
        return int(time.time())

    def nonce(self) -> str:
        return str(self.rng.randrange(10**8, 10**9))

    def plain_query(self) -> dict[str, str]:
        stamp, nonce = str(self.now()), self.nonce()
        return {"signature": crypto.signature(self.token, stamp, nonce), "timestamp": stamp, "nonce": nonce}

    def event(self) -> dict[str, Any]:
        template = self.rng.choice([ONE_TIME, LONG_TERM])
        return popup_event(self.victim, template, self.rng.choice(["accept", "acceptWithAudio"]))

    def safe(self, kind: str, encrypt: str, *, fmt: str = "json", signed_over: str | None = None) -> Push:
        """A safe-mode push of ``encrypt``, its msg_signature made over ``signed_over`` (default: it)."""
        stamp, nonce = str(self.now()), self.nonce()
        query = {
            "signature": crypto.signature(self.token, stamp, nonce),
            "timestamp": stamp,
            "nonce": nonce,
            "openid": self.victim,
            "encrypt_type": "aes",
            "msg_signature": crypto.signature(
                self.token, stamp, nonce, encrypt if signed_over is None else signed_over
            ),
        }
        if fmt == "xml":
            body = (
                "<xml><ToUserName><![CDATA[gh_000sandbox0]]></ToUserName>"
                f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
            )
            return Push(kind, query, body.encode(), XML)
        return Push(kind, query, json.dumps({"ToUserName": "gh_000sandbox0", "Encrypt": encrypt}).encode())

    def encrypted(
        self, message: bytes | None = None, *, appid: str | None = None, key: str | None = None
    ) -> str:
        plain = message if message is not None else json.dumps(self.event()).encode()
        return crypto.encrypt(key or self.aes_key, plain, self.appid if appid is None else appid)


def as_xml(event: dict[str, Any]) -> str:
    item = event["List"][0]
    return (
        f"<xml><ToUserName><![CDATA[{event['ToUserName']}]]></ToUserName>"
        f"<FromUserName><![CDATA[{event['FromUserName']}]]></FromUserName>"
        f"<CreateTime>{event['CreateTime']}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event['Event']}]]></Event><SubscribeMsgPopupEvent><List>"
        f"<TemplateId><![CDATA[{item['TemplateId']}]]></TemplateId>"
        f"<SubscribeStatusString><![CDATA[{item['SubscribeStatusString']}]]></SubscribeStatusString>"
        f"<PopupScene>0</PopupScene></List></SubscribeMsgPopupEvent></xml>"
    )


def valid_body(ctx: Context) -> tuple[bytes, str]:
    event = ctx.event()
    if ctx.rng.random() < 0.5:
        return json.dumps(event, ensure_ascii=False).encode(), JSON
    return as_xml(event).encode(), XML


# -- the kinds of case: each returns one push that must be refused ------------------------------


def random_body(ctx: Context) -> Push:
    rng = ctx.rng
    choice = rng.randrange(3)
    if choice == 0:
        body = rng.randbytes(rng.randrange(0, 4096))
    elif choice == 1:
        body = json.dumps(_random_json(rng, 0)).encode()
    else:
        body = ("<" + "".join(rng.choices(string.printable, k=rng.randrange(1, 2048)))).encode()
    return Push("random body", ctx.plain_query(), body, rng.choice([JSON, XML, "application/octet-stream"]))


def _random_json(rng: random.Random, depth: int) -> dict[str, Any]:
    def value(level: int) -> Any:
        pick = rng.randrange(6 if level < 4 else 4)
        if pick == 0:
            return rng.randrange(-(2**63), 2**63)
        if pick == 1:
            return "".join(rng.choices(string.printable + "中文¥", k=rng.randrange(0, 40)))
        if pick == 2:
            return rng.choice([None, True, False, 1.5e308])
        if pick == 3:
            return ""
        if pick == 4:
            return [value(level + 1) for _ in range(rng.randrange(0, 4))]
        return {f"k{i}": value(level + 1) for i in range(rng.randrange(0, 4))}

    keys = ["ToUserName", "FromUserName", "MsgType", "Event", "List", "x", "CreateTime"]
    return {rng.choice(keys) + str(rng.randrange(3)): value(depth) for _ in range(rng.randrange(0, 6))}


def mutated_body(ctx: Context) -> Push:
    """A valid event broken where the contract says it is unreadable; the plaintext signature is valid."""
    rng = ctx.rng
    event = ctx.event()
    mutation = rng.randrange(6)
    if mutation == 0:
        body, media = valid_body(ctx)
        body = body[: rng.randrange(1, len(body) - 1)]
    elif mutation == 1:
        del event[rng.choice(["ToUserName", "FromUserName", "CreateTime", "MsgType"])]
        body, media = json.dumps(event).encode(), JSON
    elif mutation == 2:
        event["CreateTime"] = rng.choice(["abc", "", "12.5", [], {}, "9" * 40])
        body, media = json.dumps(event).encode(), JSON
    elif mutation == 3:
        event["List"] = rng.choice(["accept", 7, [1, 2], [["nested"]]])
        body, media = json.dumps(event).encode(), JSON
    elif mutation == 4:
        body, media = valid_body(ctx)
        at = rng.randrange(len(body))
        body = body[:at] + rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"]) + body[at + 1 :]
    else:
        body, media = valid_body(ctx)
        body = b"\x00" * rng.randrange(1, 8) + body
    return Push("mutated body", ctx.plain_query(), body, media)


def bad_signature(ctx: Context) -> Push:
    rng = ctx.rng
    query = ctx.plain_query()
    good = query["signature"]
    at = rng.randrange(len(good))
    forged = rng.choice(
        [
            good[:at] + rng.choice([c for c in "0123456789abcdef" if c != good[at]]) + good[at + 1 :],
            "".join(rng.choices("0123456789abcdef", k=40)),
            good[:-1],
            good + "0",
            "",
            crypto.signature("not-the-token", query["timestamp"], query["nonce"]),
        ]
    )
    if forged:
        query["signature"] = forged
    else:
        del query["signature"]
    body, media = valid_body(ctx)
    return Push("signature", query, body, media)


def bad_timestamp(ctx: Context) -> Push:
    rng = ctx.rng
    now = ctx.now()
    stamp = rng.choice(
        [
            str(now - rng.randrange(301, 10**7)),
            str(now + rng.randrange(301, 10**7)),
            str(now * 1000),
            f"{now}.5",
            f"-{now}",
            "abc",
            " " + str(now),
            "0",
            "9" * 30,
            "",
        ]
    )
    nonce = ctx.nonce()
    query = {"signature": crypto.signature(ctx.token, stamp, nonce), "timestamp": stamp, "nonce": nonce}
    if not stamp:
        del query["timestamp"]
    body, media = valid_body(ctx)
    return Push("timestamp", query, body, media)


def bad_nonce(ctx: Context) -> Push:
    rng = ctx.rng
    choice = rng.randrange(3)
    body, media = valid_body(ctx)
    if choice == 0:  # another push's signature pair, the body swapped for this user's accept
        return Push("nonce", ctx.replay(), body, media)
    query = ctx.plain_query()
    if choice == 1:
        query["nonce"] = ctx.nonce() if rng.random() < 0.5 else query["nonce"] + "0"
    else:
        del query["nonce"]
    return Push("nonce", query, body, media)


def truncated_ciphertext(ctx: Context) -> Push:
    encrypt = ctx.encrypted()
    cut = encrypt[: ctx.rng.randrange(0, len(encrypt) - 1)]
    return ctx.safe("truncated ciphertext", cut, fmt=ctx.rng.choice(["json", "xml"]))


def padded_ciphertext(ctx: Context) -> Push:
    rng = ctx.rng
    encrypt = ctx.encrypted()
    raw = base64.b64decode(encrypt)
    padded = rng.choice(
        [
            encrypt + "=" * rng.randrange(1, 4),
            encrypt
            + "".join(rng.choices(string.ascii_letters + string.digits + "+/", k=rng.randrange(1, 64))),
            base64.b64encode(raw + rng.randbytes(16 * rng.randrange(1, 8))).decode(),
            base64.b64encode(rng.randbytes(16 * rng.randrange(1, 8)) + raw).decode(),
            encrypt + " " * rng.randrange(1, 8),
            encrypt + encrypt,
        ]
    )
    return ctx.safe("padded ciphertext", padded, fmt=rng.choice(["json", "xml"]))


def flipped_ciphertext(ctx: Context) -> Push:
    rng = ctx.rng
    raw = bytearray(base64.b64decode(ctx.encrypted()))
    at = rng.randrange(len(raw))
    raw[at] ^= 1 << rng.randrange(8)
    flipped = base64.b64encode(bytes(raw)).decode()
    if rng.random() < 0.5:  # msg_signature made for the flipped ciphertext
        return ctx.safe("flipped ciphertext", flipped)
    return ctx.safe("flipped ciphertext", flipped, signed_over=ctx.encrypted())


def wrong_appid(ctx: Context) -> Push:
    rng = ctx.rng
    appid = rng.choice(
        [
            "wx" + rng.randbytes(8).hex(),
            ctx.appid + "x",
            ctx.appid[:-1],
            ctx.appid.upper(),
            "",
            ctx.appid + "\x00",
        ]
    )
    return ctx.safe("wrong AppID", ctx.encrypted(appid=appid), fmt=rng.choice(["json", "xml"]))


def wrong_key(ctx: Context) -> Push:
    key = "".join(ctx.rng.choices(string.ascii_letters + string.digits, k=43))
    return ctx.safe("wrong EncodingAESKey", ctx.encrypted(key=key))


BOMBS = [
    # billion laughs
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'
        for i in range(1, 10)
    )
    + "]><xml><ToUserName>&lol9;</ToUserName></xml>",
    # quadratic blowup
    '<!DOCTYPE x [<!ENTITY a "'
    + "a" * 50_000
    + '">]><xml><ToUserName>'
    + "&a;" * 2000
    + "</ToUserName></xml>",
    # external entity and parameter entity
    '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><ToUserName>&e;</ToUserName></xml>',
    '<!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:1/x.dtd"> %p;]><xml/>',
    # a declaration hidden behind a lowercase keyword and odd spacing
    "<!doctype xml [ <!entity e 'x'> ]><xml><ToUserName>&e;</ToUserName></xml>",
    # undeclared entity, deep nesting, wide flood
    "<xml><ToUserName>&undefined;</ToUserName></xml>",
    "<xml>" + "<a>" * 20_000 + "</a>" * 20_000 + "</xml>",
    "<xml>" + "<a/>" * 50_000 + "</xml>",
]


def xml_bomb(ctx: Context) -> Push:
    bomb = ctx.rng.choice(BOMBS)
    if ctx.rng.random() < 0.3:
        return ctx.safe("XML bomb", ctx.encrypted(bomb.encode()), fmt="xml")
    return Push("XML bomb", ctx.plain_query(), bomb.encode(), XML)


def lone_surrogate(ctx: Context) -> Push:
    rng = ctx.rng
    surrogate = rng.choice(["\\ud800", "\\udfff", "\\udbff\\u0041", "\\udc00\\ud800"])
    event = json.dumps(ctx.event())
    field_name = rng.choice(["FromUserName", "ToUserName", "TemplateId", "Event"])
    marker = f'"{field_name}": "'
    body = event.replace(marker, marker + surrogate, 1)
    if rng.random() < 0.3:
        return ctx.safe("lone surrogate", ctx.encrypted(body.encode()))
    if rng.random() < 0.3:
        return Push("lone surrogate", ctx.plain_query(), body.encode().replace(b"\\ud800", b"\xed\xa0\x80"))
    return Push("lone surrogate", ctx.plain_query(), body.encode())


KINDS: list[Callable[[Context], Push]] = [
    random_body,
    mutated_body,
    bad_signature,
    bad_timestamp,
    bad_nonce,
    truncated_ciphertext,
    padded_ciphertext,
    flipped_ciphertext,
    wrong_appid,
    wrong_key,
    xml_bomb,
    lone_surrogate,
]


def large_cases(ctx: Context) -> list[Push]:
    """Bodies near Lambda's 6 MB request limit: padded ciphertexts and XML and JSON floods."""
    encrypt = ctx.encrypted()
    return [
        ctx.safe("padded ciphertext", encrypt + "A" * MB),
        ctx.safe("padded ciphertext", encrypt + "A" * 4 * MB),
        Push(
            "XML bomb",
            ctx.plain_query(),
            ("<xml>" + "<a>" * 300_000 + "</a>" * 300_000 + "</xml>").encode(),
            XML,
        ),
        Push("XML bomb", ctx.plain_query(), ("<xml>" + "<a/>" * MB + "</xml>").encode(), XML),
        Push("random body", ctx.plain_query(), json.dumps({f"k{i}": i for i in range(300_000)}).encode()),
    ]


# -- the stack and the function's memory ---------------------------------------------------------


@pytest.fixture(scope="module")
def push_stack(transcript: Transcript, local_env: dict[str, str]) -> Iterator[LocalStack]:
    with loud_stack(transcript, local_env) as running:
        yield running
        transcript.learn(running)


def push_workers(stack: LocalStack) -> list[int]:
    """The pids of the push function's worker processes on ``stack``, read from their environment."""
    name = f"AWS_LAMBDA_FUNCTION_NAME={stack.description.functions['WeChatPushFunction'].name}".encode()
    endpoint = f"AWS_ENDPOINT_URL={stack.aws_endpoint}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if name in environ and endpoint in environ:
            pids.append(int(entry.name))
    return pids


def memory_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


@dataclass
class FuzzRun:
    cases: int
    by_kind: dict[str, int]
    accepted: list[str]
    server_errors: list[str]
    not_json: list[str]
    victim_grants: dict[str, Any]
    control_grants: int
    idle_kib: int
    peak_kib: int
    workers: int
    seed: int


@pytest.fixture(scope="module")
def fuzz_run(push_stack: LocalStack, transcript: Transcript, scale: Any) -> FuzzRun:
    stack = push_stack
    names = stack.description.parameters
    token = stack.secure_strings[str(names["PushTokenParam"])]
    aes_key = stack.secure_strings[str(names["PushAesKeyParam"])]
    seed = int(os.environ.get("WXSUB_RELIABILITY_SEED") or time.time_ns() % 10**9)
    with unsigned(stack, transcript) as api:
        victim, victim_token = login(stack, api)
        control, control_token = login(stack, api)

        def send(push: Push) -> httpx.Response:
            return api.post(
                "/wechat/push",
                params=push.query,
                content=push.body,
                headers={"content-type": push.content_type},
            )

        ctx = Context(token, aes_key, stack.appid, victim, random.Random(seed), lambda: {})

        def replay() -> dict[str, str]:
            """A plaintext push of the control user's reject, applied: its signature pair is spent."""
            query = ctx.plain_query()
            reject = popup_event(control, ONE_TIME, "reject")
            reject["CreateTime"] = ctx.now() - ctx.rng.randrange(0, 10**6)
            answer = send(Push("control", query, json.dumps(reject).encode()))
            assert (answer.status_code, answer.text) == (200, "success")
            return query

        ctx.replay = replay
        warm = send(
            ctx.safe(
                "control",
                crypto.encrypt(aes_key, json.dumps(popup_event(control, ONE_TIME)).encode(), stack.appid),
            )
        )
        assert (warm.status_code, warm.text) == (200, "success")
        workers = push_workers(stack)
        assert len(workers) == 1, workers
        time.sleep(0.5)
        idle = memory_kib(workers[0])["VmRSS"]

        pushes = [KINDS[i % len(KINDS)](ctx) for i in range(scale.push_cases)]
        pushes += large_cases(ctx)
        accepted: list[str] = []
        server_errors: list[str] = []
        not_json: list[str] = []
        by_kind: Counter[str] = Counter()
        for push in pushes:
            answer = send(push)
            by_kind[push.kind] += 1
            seen = (
                f"{push.kind}: {push.query} {push.body[:120]!r} -> {answer.status_code} {answer.text[:160]}"
            )
            if answer.status_code == 200:
                accepted.append(seen)
            elif answer.status_code >= 500:
                server_errors.append(seen)
            elif not json_error(answer):
                not_json.append(seen)
        peak = max(memory_kib(pid)["VmHWM"] for pid in push_workers(stack))
        return FuzzRun(
            cases=sum(by_kind.values()),
            by_kind=dict(by_kind),
            accepted=accepted,
            server_errors=server_errors,
            not_json=not_json,
            victim_grants=grants(api, victim_token),
            control_grants=int(grants(api, control_token).get(ONE_TIME, {}).get("one_time", 0)),
            idle_kib=idle,
            peak_kib=peak,
            workers=len(push_workers(stack)),
            seed=seed,
        )


def test_no_forged_or_malformed_push_is_accepted_or_answered_5xx(fuzz_run: FuzzRun, figure: Any) -> None:
    run = fuzz_run
    figure.record(
        PUSH_FUZZ,
        cases=run.cases,
        figure=(
            f"{len(run.accepted)} accepted; {len(run.server_errors)} 5xx; "
            f"{len(run.not_json)} 4xx not JSON; {len(run.victim_grants)} grants gained"
        ),
        goal="0 accepted; 0 5xx",
        at_goal=not run.accepted and not run.server_errors and not run.not_json and not run.victim_grants,
        by_kind=run.by_kind,
        seed=run.seed,
        failed_by_kind=dict(Counter(seen.split(":")[0] for seen in run.accepted + run.server_errors)),
        examples=[*run.accepted[:5], *run.server_errors[:5], *run.not_json[:5]],
    )
    assert run.accepted == []
    assert run.server_errors == []
    assert run.not_json == []
    assert run.victim_grants == {}, "a fuzzed push counted an accept"
    assert run.control_grants == 1, "the valid push before the fuzz was counted once"
    assert len(run.by_kind) == len(KINDS), run.by_kind


def test_the_push_functions_peak_memory_stays_under_twice_its_idle_size(
    fuzz_run: FuzzRun, figure: Any
) -> None:
    run = fuzz_run
    ratio = run.peak_kib / run.idle_kib
    figure.record(
        PUSH_MEMORY,
        cases=run.cases,
        figure=f"peak {run.peak_kib / 1024:.0f} MB = {ratio:.2f}× idle {run.idle_kib / 1024:.0f} MB",
        goal="peak < 2× idle",
        at_goal=ratio < 2,
        workers=run.workers,
    )
    assert run.workers == 1, "the fuzz ran in one execution environment"
    assert ratio < 2, f"peak {run.peak_kib} KiB, idle {run.idle_kib} KiB"
