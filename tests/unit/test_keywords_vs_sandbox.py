"""wxsub's validator and the sandbox's independent rule table agree, value for value.

For each rule of wechat-api.md §4 hypothesis builds values at the limit and one past it, values
holding each character class the rule forbids, and (for the grammars) well-formed and broken
forms; each is put to ``wxsub.keywords.check_value`` and ``sandbox.keywords.value_ok``. Every
rule must see a value both accept and one both reject, so agreement cannot come from both sides
refusing everything.

Where §4 leaves a point UNCONFIRMED the two sides may read it differently; ``DIVERGENCES``
lists each such class of values, and a disagreement is allowed only inside one of them and only
with wxsub as the stricter side (a value wxsub passes, the sandbox never refuses). One class is
a sandbox departure from §4 itself; its exact cases are pinned in a strict xfail.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from wxsub.keywords import (
    RULES,
    check_value,
    is_currency,
)

sandbox_keywords = pytest.importorskip(
    "sandbox.keywords", reason="sandbox/keywords.py (the sandbox's own rule table) does not exist yet"
)

Strategy = st.SearchStrategy[str]

CHINESE = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5)
LETTER = st.sampled_from(string.ascii_letters)
DIGIT = st.sampled_from(string.digits)
ASCII_SYMBOL = st.sampled_from(string.punctuation)
WIDE_SYMBOL = st.sampled_from("，。、；：？！“”‘’（）【】《》—…·¥￥€£→☀")
SYMBOL = st.one_of(ASCII_SYMBOL, WIDE_SYMBOL)
FORBIDDEN_EVERYWHERE: dict[str, Strategy] = {
    "emoji": st.characters(min_codepoint=0x1F300, max_codepoint=0x1F64F),
    "astral_chinese": st.sampled_from("𠮷𠀀𪚥"),
    "compat_ideograph": st.sampled_from("\uf900\uf91d\ufa11"),
    "control": st.sampled_from("\n\t\r\x00\u200d"),
    "ideographic_space": st.just("\u3000"),
    "fullwidth_alnum": st.sampled_from("ＡＺａｚ０９"),
    "kana_hangul": st.sampled_from("あのカ한글"),
    "other_letter_or_number": st.sampled_from("αЖ²½Ⅻ〇é"),
}
CLASSES: dict[str, Strategy] = {
    "chinese": CHINESE,
    "letter": LETTER,
    "digit": DIGIT,
    "symbol": SYMBOL,
    "space": st.just(" "),
    **FORBIDDEN_EVERYWHERE,
}
ENUM_VALUES = ["客厅", "阳台", "设备发生故障,导致工作异常,请及时查看"]


def text_of(allowed: list[str], size: int) -> Strategy:
    alphabet = st.one_of(*(CLASSES[name] for name in allowed))
    return st.text(alphabet, min_size=size, max_size=size)


def with_intruder(base: Strategy, intruder: Strategy) -> Strategy:
    return st.tuples(base, intruder, st.integers(min_value=0, max_value=40)).map(
        lambda parts: parts[0][: parts[2]] + parts[1] + parts[0][parts[2] :]
    )


def charset_cases(allowed: list[str], limit: int) -> Strategy:
    sizes = st.sampled_from(sorted({1, max(1, limit - 1), limit, limit + 1}))
    sized = sizes.flatmap(lambda size: text_of(allowed, size))
    shorter = text_of(allowed, max(1, limit - 1))
    intruders = [with_intruder(shorter, CLASSES[name]) for name in CLASSES if name not in allowed]
    return st.one_of(sized, *intruders)


def name_cases() -> Strategy:
    chinese_name = st.sampled_from([9, 10, 11]).flatmap(
        lambda size: st.tuples(CHINESE, text_of(["chinese", "letter", "symbol", "space"], size - 1)).map(
            "".join
        )
    )
    latin_name = st.sampled_from([1, 19, 20, 21]).flatmap(
        lambda size: text_of(["letter", "symbol", "space"], size)
    )
    return st.one_of(chinese_name, latin_name, charset_cases(["chinese", "letter", "symbol", "space"], 10))


def digits(size: int) -> Strategy:
    return st.text(DIGIT, min_size=size, max_size=size)


def number_cases() -> Strategy:
    integer = st.sampled_from([1, 31, 32, 33]).flatmap(digits)
    decimal = st.tuples(st.sampled_from([1, 29, 30, 31]).flatmap(digits), digits(1)).map(".".join)
    broken = st.sampled_from(["1.2.3", ".5", "5.", "-5", "+5", "1,000", "1e5", "1 000"])
    return st.one_of(integer, decimal, broken, charset_cases(["digit"], 32))


CURRENCY = st.sampled_from("¥$€£￥")


def amount_cases() -> Strategy:
    whole = st.sampled_from([1, 9, 10, 11]).flatmap(digits)
    split = st.sampled_from([(8, 2), (9, 2), (1, 2)]).flatmap(
        lambda sizes: st.tuples(digits(sizes[0]), digits(sizes[1])).map(".".join)
    )
    number = st.one_of(whole, split)
    documented = st.tuples(CURRENCY, number).map("".join) | number.map(lambda n: n + "元")
    both = st.tuples(CURRENCY, number).map(lambda parts: parts[0] + parts[1] + "元")
    broken = st.sampled_from(["¥-5", "-¥5", "¥1,000", "¥¥5", "¥.5", "¥5.", "5$", "CNY5", "¥五元", "¥"])
    intruded = with_intruder(st.just("¥100"), st.one_of(LETTER, CHINESE, ASCII_SYMBOL))
    return st.one_of(documented, both, number, broken, intruded)


def two(low: int, high: int) -> Strategy:
    return st.integers(min_value=low, max_value=high).map(lambda n: f"{n:02d}")


def clock() -> Strategy:
    short = st.tuples(two(0, 23), two(0, 59)).map(":".join)
    full = st.tuples(two(0, 23), two(0, 59), two(0, 59)).map(":".join)
    wrong = st.sampled_from(["24:00", "15:60", "9:42", "15.01", "15:01:60"])
    return st.one_of(short, full, wrong)


def day() -> Strategy:
    year = st.integers(min_value=1990, max_value=2040)
    month = st.integers(min_value=1, max_value=12)
    dom = st.integers(min_value=1, max_value=31)
    cn = st.tuples(year, month, dom).map(lambda d: f"{d[0]}年{d[1]}月{d[2]}日")
    iso = st.tuples(year, month, dom).map(lambda d: f"{d[0]}-{d[1]:02d}-{d[2]:02d}")
    wrong = st.sampled_from(["2019/12/25", "2019年13月1日", "2019-2-5", "19年10月1日", "2019.12.25"])
    return st.one_of(cn, iso, wrong)


def grammar_cases(point: Strategy) -> Strategy:
    ranged = st.tuples(point, st.sampled_from(["~", " ~ ", "~ ", "  ~  "]), point).map("".join)
    joined_badly = st.tuples(point, st.sampled_from(["～", "~~", " - "]), point).map("".join)
    intruded = with_intruder(point, st.one_of(LETTER, CHINESE, st.sampled_from("\n😀")))
    return st.one_of(point, point, ranged, joined_badly, intruded)


def time_cases() -> Strategy:
    dated = st.tuples(day(), clock()).map(" ".join)
    return grammar_cases(st.one_of(clock(), dated, day()))


def date_cases() -> Strategy:
    dated = st.tuples(day(), clock()).map(" ".join)
    return grammar_cases(st.one_of(day(), dated, clock()))


def car_cases() -> Strategy:
    def plate(size: int) -> Strategy:
        middle = st.text(
            st.sampled_from(string.ascii_uppercase + string.digits), min_size=size - 2, max_size=size - 2
        )
        return st.tuples(CHINESE | LETTER, middle, CHINESE | DIGIT).map("".join)

    sized = st.sampled_from([2, 7, 8, 9]).flatmap(plate)
    intruded = with_intruder(
        plate(7).map(lambda p: p[:6]), st.one_of(CHINESE, SYMBOL, *FORBIDDEN_EVERYWHERE.values())
    )
    return st.one_of(sized, intruded)


def enum_cases() -> Strategy:
    listed = st.sampled_from(ENUM_VALUES)
    near = listed.map(lambda v: v + " ") | listed.map(lambda v: v[:1]) | st.sampled_from(["卧室", "客厅阳台"])
    return st.one_of(listed, near, st.text(st.one_of(CHINESE, LETTER), min_size=1, max_size=4))


CASES: dict[str, Callable[[], Strategy]] = {
    "thing": lambda: charset_cases(["chinese", "letter", "digit", "symbol", "space"], 20),
    "short_thing": lambda: charset_cases(["chinese", "letter", "digit", "symbol", "space"], 5),
    "letter": lambda: charset_cases(["letter"], 32),
    "symbol": lambda: charset_cases(["symbol"], 5),
    "character_string": lambda: charset_cases(["letter", "digit", "symbol"], 32),
    "phone_number": lambda: charset_cases(["digit", "symbol"], 17),
    "phrase": lambda: charset_cases(["chinese"], 5),
    "name": name_cases,
    "number": number_cases,
    "amount": amount_cases,
    "time": time_cases,
    "date": date_cases,
    "car_number": car_cases,
    "enum": enum_cases,
}

DOCUMENTED_EXAMPLES = {
    "number": "339208499",
    "character_string": "KHDD1912310002",
    "time": "2019年10月1日 15:01",
    "date": "2019-12-25 09:42",
    "amount": "¥100.00",
    "phone_number": "+86-0766-66888866",
    "car_number": "粤A8Z888挂",
    "phrase": "配送中",
    "thing": "TIT会议室",
    "short_thing": "已发货",
    "letter": "KHDD",
    "symbol": "…",
    "name": "张三",
    "enum": "客厅",
}


def ours_ok(rule: str, value: str) -> bool:
    return check_value(rule, value, ENUM_VALUES) is None


def sandbox_ok(rule: str, value: str) -> bool:
    return bool(sandbox_keywords.value_ok(rule, value, ENUM_VALUES))


# Where the two differ, wxsub must be the stricter side and the value must fall in one of these
# classes. UNCONFIRMED: §4 leaves the point open; wxsub rejects by its principle (a value it
# passes is valid by every reading), the sandbox accepts, and neither is wrong.
Divergence = Callable[[str, str], bool]

_LOOSE_TIME = re.compile(r"(?<![0-9])[0-9]:[0-9]|[0-9]{4}-(?:[0-9]-|[0-9]{2}-[0-9](?![0-9]))|  ~|~  ")

DIVERGENCES: dict[str, Divergence] = {
    "UNCONFIRMED: a character outside the BMP (emoji, CJK extension B+), §4 and §10.11": (
        lambda rule, value: any(ord(char) > 0xFFFF for char in value)
    ),
    "UNCONFIRMED: a CJK compatibility ideograph counted as Chinese": (
        lambda rule, value: any(0xF900 <= ord(char) <= 0xFAFF for char in value)
    ),
    "UNCONFIRMED: a whitespace-only value, which wxsub treats as empty": (
        lambda rule, value: not value.strip()
    ),
    "UNCONFIRMED: a one-digit hour, a one-digit ISO month or day, or spaces around ~ (grammar, §4)": (
        lambda rule, value: rule in {"time", "date"} and _LOOSE_TIME.search(value) is not None
    ),
    "UNCONFIRMED: an amount with neither a currency symbol nor 元 (§4)": (
        lambda rule, value: rule == "amount" and not is_currency(value[0]) and not value.endswith("元")
    ),
}


def divergence(rule: str, value: str) -> str | None:
    return next((reason for reason, applies in DIVERGENCES.items() if applies(rule, value)), None)


def test_every_rule_has_cases() -> None:
    assert set(CASES) == set(RULES)


@pytest.mark.parametrize("rule", sorted(CASES))
def test_validator_and_sandbox_agree(rule: str) -> None:
    outcomes: Counter[str] = Counter()

    @settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(value=CASES[rule]())
    @example(value=DOCUMENTED_EXAMPLES[rule])
    def agree(value: str) -> None:
        ours, theirs = ours_ok(rule, value), sandbox_ok(rule, value)
        if ours == theirs:
            outcomes["accepted" if ours else "rejected"] += 1
            event(f"{rule}: both {'accept' if ours else 'reject'}")
            return
        reason = divergence(rule, value)
        event(f"{rule}: {reason}")
        assert not ours and reason is not None, f"{rule} {value!r}: wxsub {ours}, sandbox {theirs}"

    agree()
    assert outcomes["accepted"] > 0, f"{rule}: no value both accepted was generated"
    assert outcomes["rejected"] > 0, f"{rule}: no value both rejected was generated"


EDGES = [
    ("thing", "中" * 20, True),
    ("thing", "中" * 21, False),
    ("thing", "iPhone 15 Pro", True),
    ("thing", "a\nb", False),
    ("short_thing", "一二三四五", True),
    ("short_thing", "一二三四五六", False),
    ("character_string", "SN 1", False),
    ("phone_number", "0755 8888", False),
    ("symbol", "- -", False),
    ("name", "John Smith", True),
    ("name", "-", False),
    ("name", "张" * 10, True),
    ("name", "张" + "a" * 10, False),
    ("number", "1" * 30 + ".5", True),
    ("number", "1" * 31 + ".5", False),
    ("number", "-5", False),
    ("amount", "¥12345678.90", True),
    ("amount", "¥123456789.01", False),
    ("amount", "100.00元", True),
    ("amount", "¥8.8元", True),
    ("time", "15:01", True),
    ("time", "2019年10月1日", False),
    ("time", "2019年10月1日 15:01~16:00", True),
    ("date", "2019年10月1日 15:01~16:00", False),
    ("date", "2019年2月29日", False),
    ("date", "2024年2月29日", True),
    ("car_number", "粤A8Z888挂", True),
    ("car_number", "粤A8粤888", False),
    ("phrase", "配送中", True),
    ("phrase", "配送中。", False),
    ("enum", "客厅 ", False),
]


@pytest.mark.parametrize(("rule", "value", "valid"), EDGES)
def test_both_judge_hand_picked_edges_alike(rule: str, value: str, valid: bool) -> None:
    assert (ours_ok(rule, value), sandbox_ok(rule, value)) == (valid, valid)


def test_both_reject_an_enum_value_when_the_template_lists_none() -> None:
    assert check_value("enum", "客厅") is not None
    assert sandbox_keywords.value_ok("enum", "客厅") is False


THING_OUTSIDE_SECTION_4 = [
    ("thing", "あ"),
    ("thing", "한국"),
    ("thing", "ＡＢ"),
    ("thing", "０９"),
    ("thing", "αβ"),
    ("thing", "x²"),
    ("short_thing", "カ"),
]


@pytest.mark.parametrize(("rule", "value"), THING_OUTSIDE_SECTION_4)
def test_both_reject_characters_section_4_does_not_list_for_thing(rule: str, value: str) -> None:
    assert (ours_ok(rule, value), sandbox_ok(rule, value)) == (False, False)
