"""The prod stage requires safe-mode pushes by default, and refuses to start without the key.

A plaintext push is authenticated by its query string alone (Token, timestamp, nonce), which
anyone who saw one push URL can replay for 5 minutes; on prod, ``PushRequireEncryption: auto``
turns encryption on. Issue 14.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from wx_flows import ONE_TIME, aws_client, encrypted_push, login, one_time_left, popup_event, push_popup

from local.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prod(local_env: dict[str, str]) -> Iterator[LocalStack]:
    with LocalStack(ROOT / "template.yaml", env=local_env, parameters={"Stage": "prod"}) as running:
        yield running


def test_on_prod_a_push_function_without_its_aes_key_fails_to_start_naming_it_then_only_safe_mode_counts(
    prod: LocalStack,
) -> None:
    ssm = aws_client(prod, "ssm")
    key_name = str(prod.description.parameters["PushAesKeyParam"])
    key = ssm.get_parameter(Name=key_name, WithDecryption=True)["Parameter"]["Value"]
    ssm.delete_parameter(Name=key_name)
    with httpx.Client(base_url=prod.api_url, timeout=30) as api:
        openid, token = login(prod, api)
        refused_start = push_popup(prod, api, openid, ONE_TIME)
        logged = [line for line in prod.logs() if "WeChatPushFunction" in line and key_name in line]

        ssm.put_parameter(Name=key_name, Value=key, Type="SecureString", Overwrite=True)
        plaintext = push_popup(prod, api, openid, ONE_TIME)
        left_after_plaintext = one_time_left(api, token)
        safe = encrypted_push(prod, api, popup_event(openid, ONE_TIME))

        assert refused_start.status_code >= 500
        assert logged, "the cold-start failure names the missing parameter"
        assert (plaintext.status_code, plaintext.json()["error"]) == (401, "bad_signature")
        assert left_after_plaintext == 0
        assert (safe.status_code, safe.text) == (200, "success")
        assert one_time_left(api, token) == 1
