"""The sandbox's own keyword table (wechat-api.md §4), rule by rule, without a server."""

from __future__ import annotations

import pytest

from sandbox.keywords import RULES, rule_of, value_ok

ACCEPTED = {
    "thing": ["机械键盘", "TIT创意园 3号楼", "a" * 20, "吉尔吉斯斯坦进口黑麦列巴(700克/条)", "😀"],
    "short_thing": ["北门车场", "ABCDE"],
    "number": ["339208499", "3.14", "0", "9" * 32],
    "letter": ["abc", "ABCxyz", "z" * 32],
    "symbol": ["#", "+-*/", "，。！", "¥$"],
    "character_string": ["KHDD1912310002", "A-1_b/2", "x" * 32],
    "time": [
        "15:01",
        "9:05",
        "15:01:59",
        "2019年10月1日 15:01",
        "2019-12-25 09:42",
        "2021-10-21 12:00:00",
        "15:01~16:00",
        "2019年10月1日 15:01 ~ 2019年10月1日 16:00",
        "2019年10月1日 15:01~16:00",
    ],
    "date": [
        "2019年10月1日",
        "2019年10月1日 15:01",
        "2019-12-25 09:42",
        "2019-12-25",
        "2015年01月05日",
        "2019-12-25 09:42:00",
        "2019年10月1日~2019年10月7日",
    ],
    "amount": ["¥100.00", "100.00元", "￥5", "$1234567890", "12.5", "¥100元"],
    "phone_number": ["+86-0766-66888866", "13800138000", "(010)12345678"],
    "car_number": ["粤A8Z888挂", "粤A12345", "AB12345"],
    "name": ["张三", "阿卜杜拉·买买提", "John Smith", "Mary-Jane O'Neil", "张San"],
    "phrase": ["配送中", "审核通过", "已发货啦"],
}

REJECTED = {
    "thing": [
        "a" * 21,
        "吉尔吉斯斯坦进口黑麦列巴(700克/条)*2",
        "line\nbreak",
        "\u200d",
        "あ",
        "한국",
        "ＡＢ",
        "０９",
        "αβ",
        "x²",
        "\u3000",
    ],
    "short_thing": ["北门停车场A", "ABCDEF", "カ"],
    "number": ["-1", "1.2.3", ".5", "5.", "1e5", "１２", "9" * 33, "12 3"],
    "letter": ["abc1", "ab c", "é", "a" * 33],
    "symbol": ["######", "a", "#1", " "],
    "character_string": ["订单123", "AB 12", "x" * 33],
    "time": [
        "25:00",
        "15:60",
        "2019年10月1日",
        "2019-02-30 10:00",
        "15.01",
        "2019年10月1日15:01",
        "15:01~",
        "下午3点",
    ],
    "date": [
        "2019年13月1日",
        "2019-02-30",
        "15:01",
        "2019/12/25",
        "2019年10月1日 25:00",
        "2019年10月1日 15:01~16:00",
    ],
    "amount": ["¥", "元", "¥12345678901", "-5.00", "1,000.00", "¥¥5", "100.00美元", "¥ 100"],
    "phone_number": ["+86 138", "tel:123", "1" * 18],
    "car_number": ["粤A8Z888挂X", "A粤123", "粤A-12345"],
    "name": ["张三1", "一二三四五六七八九十一", "a" * 21, "...", "R2D2"],
    "phrase": ["配送中a", "匀城毛尖茶叶", "ok", "配送 中"],
}


@pytest.mark.parametrize(("rule", "value"), [(r, v) for r, vs in ACCEPTED.items() for v in vs])
def test_accepted_values(rule: str, value: str) -> None:
    assert value_ok(rule, value)


@pytest.mark.parametrize(("rule", "value"), [(r, v) for r, vs in REJECTED.items() for v in vs])
def test_rejected_values(rule: str, value: str) -> None:
    assert not value_ok(rule, value)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_empty_value_is_never_ok(rule: str) -> None:
    assert not value_ok(rule, "", [""])


def test_enum_accepts_only_listed_values() -> None:
    values = ["门锁发生异常，请注意查看。", "设备已恢复正常。"]
    assert value_ok("enum", "设备已恢复正常。", values)
    assert value_ok("enum_string", "设备已恢复正常。", values)
    assert not value_ok("enum", "设备已恢复正常", values)
    assert not value_ok("enum", "设备已恢复正常。", None)


def test_length_counts_code_points() -> None:
    assert value_ok("thing", "😀" * 20)
    assert not value_ok("thing", "😀" * 21)
    assert value_ok("phrase", "𠀀𠀁𠀂𠀃𠀄")


def test_unknown_rule_raises() -> None:
    with pytest.raises(ValueError):
        value_ok("site", "x")


@pytest.mark.parametrize(
    ("key", "rule"),
    [
        ("thing1", "thing"),
        ("short_thing6", "short_thing"),
        ("character_string12", "character_string"),
        ("enum_string2", "enum"),
        ("phone_number5", "phone_number"),
        ("date01", "date"),
    ],
)
def test_rule_of_keyword_names(key: str, rule: str) -> None:
    assert rule_of(key) == rule


@pytest.mark.parametrize("key", ["thing", "site01", "Thing1"])
def test_rule_of_rejects_unknown_names(key: str) -> None:
    with pytest.raises(ValueError):
        rule_of(key)
