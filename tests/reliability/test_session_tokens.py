"""Forged session tokens: tampered, expired, signed with a foreign key or with ``alg: none`` — all 401.

Every case starts from a real token the stack issued at login and breaks one thing: a character
of its header, claims or signature, its claims swapped under the old signature, its expiry (signed
with the stack's own key, so only the time is wrong), its key (a random one, or the right key under
another algorithm), or its algorithm (``none`` in any spelling, with or without the old signature).
The real token is used once before and once after, so the route is shown to accept a good one.
"""

from __future__ import annotations

import base64
import json
import random
import string
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from harness import SCALE, json_error
from wx_flows import login

from bench.reliability import SESSION_TOKENS
from local.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(SCALE.timeout)]
LEEWAY = 5  # seconds the product allows for clock skew; an expired case is older than that


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Forger:
    def __init__(self, token: str, key: str, rng: random.Random) -> None:
        self.token = token
        self.key = key
        self.rng = rng
        header, claims, self.signature = token.split(".")
        self.header: dict[str, Any] = json.loads(unb64(header))
        self.claims: dict[str, Any] = json.loads(unb64(claims))

    def tampered(self) -> str:
        rng = self.rng
        parts = self.token.split(".")
        choice = rng.randrange(5)
        if choice == 0:  # one character of one part
            index = rng.randrange(3)
            parts[index] = self._flip(parts[index])
            return ".".join(parts)
        if choice == 1:  # other claims under the old signature
            claims = dict(self.claims)
            claims[rng.choice(["sub", "exp", "aud", "iss"])] = rng.choice(
                ["o" + "".join(rng.choices(string.ascii_letters, k=27)), int(time.time()) + 10**6, "wxother"]
            )
            return ".".join([parts[0], b64(json.dumps(claims).encode()), parts[2]])
        if choice == 2:  # a part dropped, doubled or emptied
            return rng.choice(
                [
                    ".".join(parts[:2]),
                    ".".join(parts[:2]) + ".",
                    ".".join([*parts, parts[2]]),
                    "." + ".".join(parts[1:]),
                    parts[1],
                ]
            )
        if choice == 3:  # the claims of the same user, signed with the right key, one made invalid
            claims = dict(self.claims)
            broken = rng.choice(["aud", "iss", "drop"])
            if broken == "drop":
                del claims[rng.choice(["sub", "exp", "iat", "aud", "iss"])]
            else:
                claims[broken] = "wx" + rng.randbytes(8).hex() if broken == "aud" else "not-wxsub"
            return jwt.encode(claims, self.key, algorithm="HS256")
        return self.token[: rng.randrange(1, len(self.token) - 1)]

    def _flip(self, part: str) -> str:
        """``part`` with one character changed so that the bytes it encodes change too (the last
        character of base64 carries padding bits, and a change there alone may decode the same)."""
        alphabet = string.ascii_letters + string.digits + "-_"
        while True:
            at = self.rng.randrange(len(part))
            flipped = part[:at] + self.rng.choice([c for c in alphabet if c != part[at]]) + part[at + 1 :]
            if unb64(flipped) != unb64(part):
                return flipped

    def expired(self) -> str:
        now = int(time.time())
        ended = now - self.rng.choice([LEEWAY + 2, 60, 3600, 8 * 86400, now - 1])
        claims = {**self.claims, "iat": ended - 604800, "exp": ended}
        return jwt.encode(claims, self.key, algorithm="HS256")

    def foreign_key(self) -> str:
        rng = self.rng
        choice = rng.randrange(3)
        if choice == 0:
            key = "".join(rng.choices(string.ascii_letters + string.digits, k=rng.choice([32, 43, 64])))
            return jwt.encode(self.claims, key, algorithm="HS256")
        if choice == 1:  # the right key, an algorithm the product does not take
            return jwt.encode(self.claims, self.key, algorithm=rng.choice(["HS384", "HS512"]))
        near = self.key[:-1] + ("A" if self.key[-1] != "A" else "B")
        return jwt.encode(self.claims, near, algorithm="HS256")

    def alg_none(self) -> str:
        rng = self.rng
        header = {**self.header, "alg": rng.choice(["none", "None", "NONE", "nOnE", ""])}
        if rng.random() < 0.3:
            header.pop("typ", None)
        signature = rng.choice(["", self.signature, "e30"])
        return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(self.claims).encode()), signature])


def test_every_forged_session_token_is_401_invalid_session(
    stack: LocalStack, api: httpx.Client, scale: Any, figure: Any
) -> None:
    _, token = login(stack, api)
    key = stack.secure_strings[str(stack.description.parameters["SessionKeyParam"])]
    forger = Forger(token, key, random.Random(time.time_ns()))
    kinds: list[tuple[str, Callable[[], str]]] = [
        ("tampered", forger.tampered),
        ("expired", forger.expired),
        ("foreign key", forger.foreign_key),
        ("alg none", forger.alg_none),
    ]
    before = _read(api, token)
    by_kind: Counter[str] = Counter()
    refused = 0
    wrong: list[str] = []
    for i in range(scale.token_cases):
        kind, forge = kinds[i % len(kinds)]
        forged = forge()
        assert forged != token
        answer = _read(api, forged) if i % 2 else _report(api, forged)
        by_kind[kind] += 1
        if answer.status_code == 401 and json_error(answer) and answer.json()["error"] == "invalid_session":
            refused += 1
        else:
            wrong.append(f"{kind}: {forged} -> {answer.status_code} {answer.text[:200]}")
    after = _read(api, token)

    cases = sum(by_kind.values())
    figure.record(
        SESSION_TOKENS,
        cases=cases,
        figure=f"{refused} of {cases} answered 401 invalid_session",
        goal="all 401",
        at_goal=refused == cases and not wrong,
        by_kind=dict(by_kind),
        examples=wrong[:5],
    )
    assert (before.status_code, after.status_code) == (200, 200), "the real token is accepted"
    assert wrong == []
    assert refused == cases == scale.token_cases


def _read(api: httpx.Client, token: str) -> httpx.Response:
    return api.get("/subscriptions", headers={"Authorization": f"Bearer {token}"})


def _report(api: httpx.Client, token: str) -> httpx.Response:
    body = {"errMsg": "requestSubscribeMessage:ok", "tmpl-forged": "accept"}
    return api.post("/subscriptions", json=body, headers={"Authorization": f"Bearer {token}"})
