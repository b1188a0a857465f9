"""The sandbox's state behind one lock, and the operations both API surfaces share."""

from __future__ import annotations

import base64
import dataclasses
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from sandbox import push
from sandbox.faults import FaultBook
from sandbox.model import (
    Call,
    Code,
    Config,
    Message,
    PushRecord,
    Template,
    User,
    new_code,
    new_openid,
    seeded_templates,
)
from sandbox.tokens import TokenBook

CODE_TTL = 300.0
_CHINA_OFFSET = 8 * 3600


class State:
    """Everything the sandbox knows. Callers hold ``lock`` for every read or write.

    ``now()`` is the sandbox clock: real time plus an offset that ``POST /sandbox/clock``
    advances, so codes and tokens can expire without waiting. Push timestamps and fault hangs
    use real time.
    """

    def __init__(self, config: Config, seed: bool) -> None:
        config.validate()
        self.lock = threading.RLock()
        self._initial = dataclasses.replace(config)
        self.config = config
        self.seed = seed
        self.offset = 0.0
        self.pusher = push.Pusher(self.lock, self.now)
        self.tokens = TokenBook(self.now, config.token_lifetime)
        self.users: dict[str, User] = {}
        self.codes: dict[str, Code] = {}
        self.templates: dict[str, Template] = {}
        self.inbox: list[Message] = []
        self.calls: list[Call] = []
        self.faults = FaultBook()
        self.pushes: list[PushRecord] = []
        self.sends_by_day: dict[int, int] = {}
        self.reset()

    def now(self) -> float:
        return time.time() + self.offset

    def reset(self, *, config: bool = False, tokens: bool = False) -> None:
        """Back to the seeded world; the configuration and issued tokens survive unless asked."""
        if config:
            self.config = dataclasses.replace(self._initial)
        self.offset = 0.0
        if tokens:
            self.tokens = TokenBook(self.now, self.config.token_lifetime)
        self.tokens.lifetime = self.config.token_lifetime
        self.users = {}
        self.codes = {}
        self.templates = {t.pri_tmpl_id: t for t in seeded_templates()} if self.seed else {}
        self.inbox = []
        self.calls = []
        self.faults = FaultBook()
        self.pushes = []
        self.sends_by_day = {}

    def configure(self, changes: dict[str, Any]) -> None:
        """Apply ``changes`` to the configuration; ValueError leaves it untouched."""
        fields = {f.name for f in dataclasses.fields(Config)}
        unknown = sorted(set(changes) - fields)
        if unknown:
            raise ValueError(f"unknown configuration keys: {', '.join(unknown)}")
        candidate = dataclasses.replace(self.config, **changes)
        candidate.validate()
        self.config = candidate
        self.tokens.lifetime = candidate.token_lifetime

    def day(self) -> int:
        """The current day number in China (UTC+8), for daily quotas."""
        return int((self.now() + _CHINA_OFFSET) // 86400)

    def add_user(self, openid: str | None = None, blocked: bool | None = None) -> User:
        user = self.users.get(openid) if openid else None
        if user is None:
            key = base64.b64encode(os.urandom(16)).decode("ascii")
            user = User(openid or new_openid(), key)
            self.users[user.openid] = user
        if blocked is not None:
            user.blocked = blocked
        return user

    def issue_code(self, user: User) -> Code:
        code = Code(new_code(), user.openid, self.config.appid, self.now())
        self.codes[code.code] = code
        return code

    def record_call(self, method: str, path: str, errcode: int | None) -> None:
        self.calls.append(Call(method, path, errcode, self.now()))

    def deliver(self, message: Message) -> None:
        self.inbox.append(message)
        day = self.day()
        self.sends_by_day[day] = self.sends_by_day.get(day, 0) + 1

    def queue_push(
        self, name: str, openid: str, items: list[dict[str, str | int]]
    ) -> Callable[[], None] | None:
        """Render an event now and return the step that submits it, to run after the current
        answer has been written; None when no push URL is configured."""
        config = self.config
        if config.push_url is None:
            return None
        timestamp = int(time.time())
        event = push.Event(name, openid, timestamp, items)
        rendered = push.render(event, config, timestamp, push.new_nonce())
        record = PushRecord(
            len(self.pushes) + 1,
            name,
            openid,
            rendered.url,
            rendered.body.decode("utf-8"),
            rendered.content_type,
        )
        self.pushes.append(record)
        pusher = self.pusher
        pusher.reserve()
        return lambda: pusher.submit(record, rendered, config)
