import pytest

from wxsub.errors import InvalidSession, Misconfigured
from wxsub.sessions import SessionSigner, bearer_token

KEY = "k" * 40


def test_a_token_names_its_openid_and_the_same_inputs_give_the_same_token():
    signer = SessionSigner(KEY, 600, "wxapp")
    first = signer.issue("openid-1", 1_000, "jti")
    again = signer.issue("openid-1", 1_000, "jti")

    assert first.token == again.token
    assert first.expires_at == 1_600


def test_a_live_token_verifies_to_its_openid():
    import time

    signer = SessionSigner(KEY, 600, "wxapp")
    token = signer.issue("openid-1", int(time.time()), "j").token

    assert signer.verify(token) == "openid-1"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        lambda token: "not-a-jwt",
        lambda token: SessionSigner("x" * 40, 600, "wxapp").issue("openid-1", 2_000_000_000 - 600, "j").token,
    ],
    ids=["tampered", "garbage", "other-key"],
)
def test_bad_tokens_are_invalid_session(mangle):
    import time

    signer = SessionSigner(KEY, 600, "wxapp")
    token = signer.issue("openid-1", int(time.time()), "j").token

    with pytest.raises(InvalidSession):
        signer.verify(mangle(token))


def test_an_expired_token_says_so():
    signer = SessionSigner(KEY, 300, "wxapp")
    token = signer.issue("openid-1", 1_000, "j").token

    with pytest.raises(InvalidSession, match="expired"):
        signer.verify(token)


def test_a_token_for_another_mini_program_is_refused():
    import time

    token = SessionSigner(KEY, 600, "wxother").issue("o", int(time.time()), "j").token

    with pytest.raises(InvalidSession):
        SessionSigner(KEY, 600, "wxapp").verify(token)


def test_short_signing_keys_are_a_configuration_error():
    with pytest.raises(Misconfigured):
        SessionSigner("short", 600, "wxapp")


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer ", "token"])
def test_authorization_header_must_be_bearer(header):
    with pytest.raises(InvalidSession):
        bearer_token(header)


def test_bearer_token_is_extracted():
    assert bearer_token("Bearer abc.def") == "abc.def"
