"""Keyword rules (wechat-api.md §4): parsing, each rule's examples, limits and forbidden classes.

Tests whose name ends in ``_unconfirmed_*`` pin a choice wxsub made where WeChat's behaviour is
marked UNCONFIRMED; the suffix says which way and why.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wxsub.errors import InvalidData
from wxsub.keywords import (
    RULES,
    Keyword,
    check_value,
    describe,
    fit_value,
    length,
    parse_content,
    rule_of,
    validate,
    violations_error,
)

GETTEMPLATE_CONTENT = "会议时间:{{date2.DATA}}\n会议地点:{{thing1.DATA}}\n"
WASHER_CONTENT = "完成时间:{{time1.DATA}}\n所在位置:{{enum_string2.DATA}}\n提示说明:{{enum_string3.DATA}}\n"
WASHER_ENUMS = [
    {"keywordCode": "enum_string2.DATA", "enumValueList": ["客厅", "阳台"]},
    {"keywordCode": "enum_string3.DATA", "enumValueList": ["设备发生故障,导致工作异常,请及时查看"]},
]


def problem(rule: str, value: str, enum_values: tuple[str, ...] = ()) -> str | None:
    found = check_value(rule, value, enum_values)
    return None if found is None else found.problem


# --- parsing -------------------------------------------------------------------------------


def test_parse_content_reads_keywords_in_order_with_rules() -> None:
    # Given the gettemplate example's content
    # When it is parsed
    keywords = parse_content(GETTEMPLATE_CONTENT)
    # Then each {{key.DATA}} is a keyword whose rule is the key without its digits
    assert keywords == (Keyword("date2", "date"), Keyword("thing1", "thing"))


def test_parse_content_attaches_enum_values_to_enum_string_keywords() -> None:
    keywords = parse_content(WASHER_CONTENT, WASHER_ENUMS)
    assert keywords == (
        Keyword("time1", "time"),
        Keyword("enum_string2", "enum", ("客厅", "阳台")),
        Keyword("enum_string3", "enum", ("设备发生故障,导致工作异常,请及时查看",)),
    )


def test_parse_content_accepts_keyword_codes_without_data_suffix_and_ignores_junk() -> None:
    lists: list[dict[str, Any]] = [
        {"keywordCode": "enum_string1", "enumValueList": ["甲", 3]},
        {"keywordCode": 5},
        {},
    ]
    assert parse_content("{{enum_string1.DATA}}", lists) == (Keyword("enum_string1", "enum", ("甲",)),)


def test_parse_content_lists_a_repeated_keyword_once() -> None:
    assert parse_content("{{thing1.DATA}} / {{thing1.DATA}}") == (Keyword("thing1", "thing"),)


@pytest.mark.parametrize(
    ("key", "rule"),
    [
        ("number01", "number"),
        ("character_string5", "character_string"),
        ("short_thing6", "short_thing"),
        ("phone_number12", "phone_number"),
        ("enum_string2", "enum"),
        ("site01", "site"),
    ],
)
def test_rule_is_the_key_without_its_trailing_digits(key: str, rule: str) -> None:
    assert rule_of(key) == rule


def test_parse_content_ignores_text_that_is_not_a_keyword() -> None:
    assert parse_content("{{Thing1.DATA}} {{thing.DATA}} {{thing1.data}} plain") == ()


# --- documented examples and per-rule acceptance -------------------------------------------


@pytest.mark.parametrize(
    ("rule", "value"),
    [
        ("thing", "TIT会议室"),
        ("thing", "吉尔吉斯斯坦进口黑麦列巴(700克/条)"),
        ("thing", "iPhone 15 Pro，已发货！"),
        ("short_thing", "已发货"),
        ("number", "339208499"),
        ("number", "3.14"),
        ("letter", "KHDD"),
        ("symbol", "…→！"),
        ("character_string", "KHDD1912310002"),
        ("character_string", "SN-2019/12#31"),
        ("time", "15:01"),
        ("time", "2019年10月1日 15:01"),
        ("time", "2021年10月21日 12:00:00"),
        ("time", "15:01~16:00"),
        ("time", "2019年10月1日 15:01 ~ 2019年10月1日 16:00"),
        ("date", "2019年10月1日"),
        ("date", "2015年01月05日"),
        ("date", "2016年8月8日"),
        ("date", "2019年10月1日 15:01"),
        ("date", "2019-12-25 09:42"),
        ("date", "2019-12-25 09:42:07"),
        ("date", "2019-12-25~2019-12-31"),
        ("amount", "¥100.00"),
        ("amount", "100.00元"),
        ("amount", "$5"),
        ("amount", "€0.99"),
        ("amount", "£12"),
        ("amount", "￥1234567890"),
        ("amount", "¥8.8元"),
        ("phone_number", "+86-0766-66888866"),
        ("phone_number", "(0755)8888-8888"),
        ("car_number", "粤A8Z888挂"),
        ("car_number", "粤AD12345"),
        ("name", "张三"),
        ("name", "阿卜杜拉·买买提"),
        ("name", "John O'Brien"),
        ("name", "李Lee"),
        ("phrase", "配送中"),
        ("phrase", "审核通过"),
    ],
)
def test_documented_and_everyday_values_are_accepted(rule: str, value: str) -> None:
    assert check_value(rule, value) is None


# --- forbidden character classes ----------------------------------------------------------

CLASS_SAMPLES = {
    "chinese": "中",
    "letter": "a",
    "digit": "7",
    "symbol": "#",
    "fullwidth_symbol": "，",
    "fullwidth_letter": "Ａ",
    "fullwidth_digit": "７",
    "kana": "の",
    "space": " ",
    "newline": "\n",
    "emoji": "😀",
    "astral_chinese": "𠮷",
}

FORBIDDEN = {
    "thing": ["fullwidth_letter", "fullwidth_digit", "kana", "newline", "emoji", "astral_chinese"],
    "short_thing": ["fullwidth_letter", "kana", "newline", "emoji"],
    "letter": ["chinese", "digit", "symbol", "fullwidth_symbol", "fullwidth_letter", "space", "emoji"],
    "symbol": ["chinese", "letter", "digit", "fullwidth_letter", "space", "newline", "emoji"],
    "character_string": [
        "chinese",
        "fullwidth_letter",
        "kana",
        "space",
        "newline",
        "emoji",
        "astral_chinese",
    ],
    "phone_number": ["chinese", "letter", "fullwidth_digit", "space", "newline", "emoji"],
    "name": ["digit", "fullwidth_digit", "kana", "newline", "emoji", "astral_chinese"],
    "phrase": ["letter", "digit", "symbol", "fullwidth_symbol", "space", "kana", "emoji", "astral_chinese"],
    "number": ["chinese", "letter", "symbol", "fullwidth_digit", "space", "emoji"],
    "car_number": ["symbol", "fullwidth_letter", "space", "kana", "emoji"],
}
BASES = {
    "thing": "已发货",
    "short_thing": "已发货",
    "letter": "abc",
    "symbol": "-",
    "character_string": "AB12",
    "phone_number": "1380",
    "name": "张三",
    "phrase": "配送",
    "number": "12",
    "car_number": "粤A8Z8",
}


@pytest.mark.parametrize(
    ("rule", "klass"), [(rule, klass) for rule, classes in FORBIDDEN.items() for klass in classes]
)
def test_each_forbidden_character_class_is_rejected(rule: str, klass: str) -> None:
    base = BASES[rule]
    value = base[:1] + CLASS_SAMPLES[klass] + base[1:]
    assert problem(rule, value) == "bad_characters"


def test_bad_characters_message_names_the_character_and_its_position() -> None:
    found = check_value("phrase", "配送A")
    assert found is not None
    assert (
        found.message
        == "the value (phrase) holds 'A' (U+0041) at character 3; phrase allows Chinese characters only"
    )


def test_chinese_in_the_middle_of_a_plate_is_a_format_error() -> None:
    assert problem("car_number", "粤A8粤888") == "bad_format"


# --- limits ---------------------------------------------------------------------------------

LIMITS = {
    "thing": ("中", 20),
    "short_thing": ("中", 5),
    "letter": ("a", 32),
    "symbol": ("#", 5),
    "character_string": ("x", 32),
    "phone_number": ("1", 17),
    "phrase": ("中", 5),
    "number": ("9", 32),
    "name": ("a", 20),
}


@pytest.mark.parametrize("rule", sorted(LIMITS))
def test_value_at_the_limit_is_accepted_and_one_past_it_rejected(rule: str) -> None:
    unit, limit = LIMITS[rule]
    assert check_value(rule, unit * limit) is None
    over = check_value(rule, unit * (limit + 1))
    assert over is not None
    assert (over.problem, over.length, over.limit) == ("too_long", limit + 1, limit)


def test_too_long_message_reads_as_the_contract_shows() -> None:
    _, [violation] = validate([Keyword("thing1", "thing")], {"thing1": "a" * 21})
    assert violation.message == "thing1 (thing) is 21 characters; the limit is 20"


def test_the_community_22_character_thing_is_rejected_as_over_20() -> None:
    found = check_value("thing", "吉尔吉斯斯坦进口黑麦列巴(700克/条)*2")
    assert found is not None
    assert (found.problem, found.length, found.limit) == ("too_long", 22, 20)


def test_plate_of_8_is_accepted_and_9_rejected() -> None:
    assert check_value("car_number", "粤A123456") is None
    assert problem("car_number", "粤A1234567") == "too_long"


def test_short_thing_limit_undocumented_unconfirmed_strict_reading_of_5() -> None:
    assert check_value("short_thing", "一二三四五") is None
    assert problem("short_thing", "一二三四五六") == "too_long"


def test_name_with_any_chinese_counts_as_chinese_name_limit_10() -> None:
    assert check_value("name", "张" * 10) is None
    assert problem("name", "张" * 11) == "too_long"
    mixed = check_value("name", "张" + "a" * 10)
    assert mixed is not None
    assert (mixed.problem, mixed.length, mixed.limit) == ("too_long", 11, 10)


@pytest.mark.parametrize("value", ["-", "·· ·", "'()'"])
def test_name_without_chinese_or_letters_is_not_a_name(value: str) -> None:
    assert problem("name", value) == "bad_format"


@pytest.mark.parametrize(
    ("rule", "value"), [("thing", "iPhone 15 Pro"), ("short_thing", "A 套餐"), ("name", "John Smith")]
)
def test_space_unconfirmed_allowed_in_prose_and_names_where_refusing_it_refuses_everyday_data(
    rule: str, value: str
) -> None:
    assert check_value(rule, value) is None


def test_latin_name_may_use_letters_and_symbols_up_to_20() -> None:
    assert check_value("name", "Jean-Luc O'Neil-Park") is None
    assert problem("name", "Jean-Luc O'Neil-Parks") == "too_long"


# --- number ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1.2.3", ".5", "5.", "-5", "+5", "1,000", "1e5"])
def test_number_rejects_signs_exponents_separators_and_stray_points(value: str) -> None:
    assert problem("number", value) in {"bad_characters", "bad_format"}


def test_number_limit_counts_the_decimal_point_as_a_character() -> None:
    assert check_value("number", "1" * 30 + ".5") is None
    assert problem("number", "1" * 31 + ".5") == "too_long"


# --- amount ---------------------------------------------------------------------------------


def test_amount_bare_number_unconfirmed_rejected_so_every_sent_amount_has_its_documented_symbol() -> None:
    found = check_value("amount", "100.00")
    assert found is not None
    assert found.problem == "bad_format"


def test_amount_limit_counts_all_ten_digits_including_decimals() -> None:
    assert check_value("amount", "¥12345678.90") is None
    found = check_value("amount", "¥123456789.01")
    assert found is not None
    assert (found.problem, found.length, found.limit) == ("too_long", 11, 10)
    assert found.message == "the value (amount) is 11 digits; the limit is 10"


@pytest.mark.parametrize(
    "value", ["¥-5", "-¥5", "¥1,000", "¥¥5", "¥5¥", "元5", "¥.5", "¥5.", "5$", "CNY5", "¥五元", "¥"]
)
def test_amount_rejects_what_the_rule_does_not_describe(value: str) -> None:
    assert problem("amount", value) in {"bad_characters", "bad_format"}


# --- time and date ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "2019年10月1日",
        "9:42",
        "24:00",
        "15:60",
        "15:01:60",
        "15.01",
        "2019/12/25 09:42",
        "2019-12-25T09:42",
        "2019-12-25  09:42",
        "2019年10月1日15:01",
        "15:01~",
        "~15:01",
        "15:01~~16:00",
        "15:01～16:00",
        "15:01  ~  16:00",
        "１５:０１",
        " 15:01",
    ],
)
def test_time_rejects_undocumented_grammar_unconfirmed_strict(value: str) -> None:
    assert problem("time", value) == "bad_format"


@pytest.mark.parametrize(
    "value",
    [
        "15:01",
        "2019-2-5",
        "2019-02-30",
        "2019年2月29日",
        "2019年13月1日",
        "19年10月1日",
        "2019年10月",
        "2019-12-25~15:00",
        "2019.12.25",
    ],
)
def test_date_rejects_impossible_or_undocumented_dates(value: str) -> None:
    assert problem("date", value) == "bad_format"


def test_date_knows_leap_years() -> None:
    assert check_value("date", "2024年2月29日") is None


def test_time_range_may_end_with_a_bare_time_after_a_dated_start() -> None:
    assert check_value("time", "2019年10月1日 15:01~16:00") is None


# --- enum -----------------------------------------------------------------------------------


def test_enum_accepts_exactly_a_listed_value() -> None:
    assert check_value("enum", "客厅", ("客厅", "阳台")) is None
    assert problem("enum", "卧室", ("客厅", "阳台")) == "not_in_enum"
    assert problem("enum", "客厅 ", ("客厅", "阳台")) == "not_in_enum"


def test_enum_without_a_known_list_rejects_since_wechat_checks_against_its_own() -> None:
    found = check_value("enum", "客厅")
    assert found is not None
    assert found.problem == "not_in_enum"
    assert "the template lists none" in found.message


def test_enum_string_is_accepted_as_a_name_for_the_enum_rule() -> None:
    assert check_value("enum_string", "客厅", ("客厅",)) is None


# --- emoji, whitespace, unknown rules -------------------------------------------------------


def test_length_counts_utf16_units_like_javascript() -> None:
    assert length("配送中") == 3
    assert length("a😀") == 3
    assert length("𠮷") == 2


@pytest.mark.parametrize("rule", ["thing", "short_thing", "character_string", "name", "symbol"])
def test_emoji_unconfirmed_rejected_everywhere_so_no_send_depends_on_surrogate_handling(rule: str) -> None:
    found = check_value(rule, "好😀" if rule in {"thing", "short_thing", "name"} else "-😀")
    assert found is not None
    assert found.problem == "bad_characters"


def test_bmp_pictographic_symbols_count_as_symbols() -> None:
    assert check_value("thing", "☀晴 ✓") is None


@pytest.mark.parametrize("rule", sorted([*RULES, "site"]))
@pytest.mark.parametrize("value", ["", " ", "\u3000", " \t "])
def test_empty_or_whitespace_only_value_is_empty_for_every_rule(rule: str, value: str) -> None:
    assert problem(rule, value, ("客厅",)) == "empty"


def test_a_rule_absent_from_the_table_passes_any_nonempty_value() -> None:
    assert check_value("site", "广州市新港中路397号 😀") is None
    assert describe("site")["limit"] is None


# --- validate --------------------------------------------------------------------------------


def test_validate_returns_the_values_and_no_violations_for_good_data() -> None:
    keywords = parse_content(WASHER_CONTENT, WASHER_ENUMS)
    data = {
        "time1": "2021年10月21日 12:00:00",
        "enum_string2": "客厅",
        "enum_string3": "设备发生故障,导致工作异常,请及时查看",
    }
    values, violations = validate(keywords, data)
    assert (values, violations) == (data, [])


def test_validate_names_every_failing_keyword_at_once() -> None:
    # Given a template of four keywords
    keywords = parse_content("{{thing1.DATA}}{{phrase2.DATA}}{{amount3.DATA}}{{date4.DATA}}")
    # When the data breaks three of them and leaves one out
    _, violations = validate(keywords, {"thing1": "a" * 21, "phrase2": "OK", "amount3": "元"})
    # Then each is named with its rule and problem
    assert [(v.keyword, v.rule, v.problem) for v in violations] == [
        ("thing1", "thing", "too_long"),
        ("phrase2", "phrase", "bad_characters"),
        ("amount3", "amount", "bad_format"),
        ("date4", "date", "missing"),
    ]


def test_missing_keyword_reports_its_rule_and_limit() -> None:
    _, [violation] = validate([Keyword("thing1", "thing")], {})
    assert (violation.problem, violation.limit, violation.length) == ("missing", 20, None)
    assert violation.message == "thing1 (thing) is missing from data"


def test_empty_value_is_a_violation() -> None:
    _, [violation] = validate([Keyword("thing1", "thing")], {"thing1": "  "})
    assert (violation.keyword, violation.problem) == ("thing1", "empty")


def test_unknown_keyword_unconfirmed_at_wechat_rejected_since_a_stray_key_is_usually_misspelt() -> None:
    values, [violation] = validate([Keyword("thing1", "thing")], {"thing1": "好", "thing_1": "好"})
    assert values == {"thing1": "好"}
    assert (violation.keyword, violation.rule, violation.problem) == ("thing_1", None, "unknown_keyword")
    assert "thing1" in violation.message


def test_validate_reports_a_non_string_value_instead_of_raising() -> None:
    _, [violation] = validate([Keyword("number1", "number")], {"number1": 5})  # type: ignore[dict-item]
    assert violation.problem == "bad_format"


# --- fit -------------------------------------------------------------------------------------


def test_fit_is_off_by_default() -> None:
    values, violations = validate([Keyword("thing1", "thing")], {"thing1": "中" * 21})
    assert values == {}
    assert violations[0].problem == "too_long"


def test_fit_ends_a_shortened_thing_with_an_ellipsis_within_the_limit() -> None:
    values, violations = validate([Keyword("thing1", "thing")], {"thing1": "中" * 30}, fit=True)
    assert violations == []
    assert values["thing1"] == "中" * 19 + "…"
    assert length(values["thing1"]) == 20


@pytest.mark.parametrize(
    ("rule", "value", "fitted"),
    [
        ("character_string", "K" * 40, "K" * 32),
        ("name", "Maximilian Alexander Smith", "Maximilian Alexander"),
        ("name", "欧阳" + "一" * 10, "欧阳" + "一" * 8),
        ("name", "Li 欧阳一二三四五六七", "Li 欧阳一二三四五"),
    ],
)
def test_fit_cuts_name_and_character_string_without_an_ellipsis(rule: str, value: str, fitted: str) -> None:
    assert fit_value(rule, value) == fitted
    assert check_value(rule, fitted) is None


def test_fit_drops_trailing_spaces_left_by_the_cut() -> None:
    assert fit_value("name", "Maximilian Alexander Smith"[:21]) == "Maximilian Alexander"
    assert fit_value("thing", "a" * 18 + " " + "b" * 5) == "a" * 18 + "…"


def test_fit_leaves_values_within_the_limit_alone() -> None:
    assert fit_value("thing", "中" * 20) == "中" * 20


@pytest.mark.parametrize(
    ("rule", "value"), [("phrase", "配送中配送中"), ("short_thing", "一二三四五六"), ("letter", "a" * 33)]
)
def test_fit_does_not_shape_other_rules(rule: str, value: str) -> None:
    _, [violation] = validate([Keyword(f"{rule}1", rule)], {f"{rule}1": value}, fit=True)
    assert violation.problem == "too_long"


def test_fit_does_not_excuse_bad_characters_within_the_limit() -> None:
    _, [violation] = validate([Keyword("thing1", "thing")], {"thing1": "好😀" * 15}, fit=True)
    assert violation.problem == "bad_characters"


THING_CHARS = st.one_of(
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5),
    st.sampled_from("abcXYZ0189 #，。…（）¥-"),
)


@given(st.text(THING_CHARS, min_size=1, max_size=60))
def test_fit_turns_any_thing_of_allowed_characters_into_a_valid_one(value: str) -> None:
    fitted = fit_value("thing", value)
    assert length(fitted) <= 20
    if value.strip():
        assert check_value("thing", fitted) is None


@given(st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40))
def test_length_is_the_javascript_string_length(value: str) -> None:
    assert length(value) == sum(2 if ord(char) > 0xFFFF else 1 for char in value)


@given(st.sampled_from(sorted(RULES)), st.text(max_size=40))
def test_check_value_never_raises(rule: str, value: str) -> None:
    check_value(rule, value, ("客厅",))


# --- API output ------------------------------------------------------------------------------


def test_describe_gives_each_rule_its_limit_and_allowed_content() -> None:
    assert describe("thing") == {
        "rule": "thing",
        "limit": 20,
        "allowed": "Chinese, letters, digits, symbols and spaces",
    }
    assert describe("enum_string")["rule"] == "enum"
    assert all(describe(rule)["allowed"] for rule in RULES)


def test_every_rule_of_section_4_is_in_the_table() -> None:
    assert set(RULES) == {
        "thing",
        "short_thing",
        "number",
        "letter",
        "symbol",
        "character_string",
        "time",
        "date",
        "amount",
        "phone_number",
        "car_number",
        "name",
        "phrase",
        "enum",
    }


def test_violations_error_is_a_422_naming_each_keyword_rule_length_and_limit() -> None:
    _, violations = validate([Keyword("thing1", "thing")], {"thing1": "a" * 21})
    error = violations_error(violations)
    assert isinstance(error, InvalidData)
    assert error.status == 422
    assert error.body() == {
        "error": "invalid_data",
        "message": "data breaks the template's keyword rules",
        "violations": [
            {
                "keyword": "thing1",
                "rule": "thing",
                "problem": "too_long",
                "length": 21,
                "limit": 20,
                "message": "thing1 (thing) is 21 characters; the limit is 20",
            }
        ],
    }
