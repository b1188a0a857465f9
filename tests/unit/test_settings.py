import pytest

from wxsub.errors import ConfigurationError
from wxsub.settings import Settings


def test_defaults_and_stage_decides_the_miniprogram_state():
    dev = Settings.from_env({"WECHAT_APPID": "wx123"})
    prod = Settings.from_env({"WECHAT_APPID": "wx123", "STAGE": "prod"})

    assert dev.miniprogram_state == "developer"
    assert prod.miniprogram_state == "formal"
    assert dev.api_base == "https://api.weixin.qq.com"
    assert dev.settle_window_seconds == 600


def test_the_settle_window_is_read_from_the_environment():
    settings = Settings.from_env({"WECHAT_APPID": "wx123", "SETTLE_WINDOW_SECONDS": "30"})

    assert settings.settle_window_seconds == 30


def test_missing_appid_fails_at_cold_start_naming_the_key():
    with pytest.raises(ConfigurationError, match="WECHAT_APPID"):
        Settings.from_env({})


def test_a_function_needing_an_unset_key_is_told_which():
    settings = Settings.from_env({"WECHAT_APPID": "wx123"})

    with pytest.raises(ConfigurationError, match="STATE_TABLE"):
        settings.need("state_table")


def test_token_cache_must_stay_under_a_minute():
    with pytest.raises(ConfigurationError, match="TOKEN_CACHE_SECONDS"):
        Settings.from_env({"WECHAT_APPID": "wx123", "TOKEN_CACHE_SECONDS": "300"})


@pytest.mark.parametrize("key", ["WECHAT_TIMEOUT_SECONDS", "SEND_ATTEMPTS", "SETTLE_WINDOW_SECONDS"])
def test_malformed_numbers_are_named(key):
    with pytest.raises(ConfigurationError, match=key):
        Settings.from_env({"WECHAT_APPID": "wx123", key: "soon"})


def test_unknown_stage_is_refused():
    with pytest.raises(ConfigurationError, match="STAGE"):
        Settings.from_env({"WECHAT_APPID": "wx123", "STAGE": "staging"})
