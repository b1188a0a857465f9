"""Template keywords and WeChat's value rules (wechat-api.md §4), checked before a send.

A template's ``content`` names its keywords (``{{thing1.DATA}}``); the letters before the
trailing digits are the rule. WeChat answers a value that breaks its rule with 47003 and names
only the first key; :func:`validate` names every failing keyword, its rule, the value's length
and the limit, before WeChat is called.

The table in §4 is prose, so some readings are ours. One principle settles them: **wxsub
accepts what the documentation shows to be valid and rejects what it leaves in doubt**, so a
value wxsub lets through is valid by every reading, and a caller refused on a doubtful point
always has a documented form to fall back on (add a currency symbol, drop the emoji, write
``2019-12-25 09:42``). The principle yields where no such form exists: a rule §4 does not
list at all (the canonical send example's ``site01``) passes any non-empty value rather than
make the template unusable, and a space is allowed in prose and names (below).

Character classes (no class holds a character outside the Basic Multilingual Plane: WeChat's
treatment of surrogate pairs is unconfirmed, §4 and §10.11, and that is where nearly all emoji
and the rare CJK extension B+ ideographs live):

* Chinese: CJK Unified Ideographs and extension A (U+4E00–U+9FFF, U+3400–U+4DBF).
  Not the compatibility block (not even its twelve unified ideographs such as 﨑), not 〇,
  not kana or hangul.
* letter: ASCII ``A-Z a-z``. Full-width and non-Latin letters are not letters.
* digit: ASCII ``0-9``. Full-width digits are not digits.
* symbol: any BMP character in a Unicode punctuation (P*) or symbol (S*) category, full-width
  ones included (``，。、（）¥…→☀``). Tabs, newlines and other controls are in no class.
* space: the ASCII space is not a symbol (Unicode calls it a separator) and §4 lists it nowhere.
  ``thing``, ``short_thing`` and ``name`` admit it all the same: refusing ``iPhone 15 Pro`` or
  ``John Smith`` would refuse everyday data with no form to fall back on. No other rule does,
  and the ideographic space U+3000 none.

Readings of the table where §4 leaves the form open:

* number: digits with at most one decimal point between digits, no sign or separators; the
  point counts toward the 32.
* amount: a currency symbol (Unicode Sc) before the number, ``元`` after it, or both; at most 10
  digits counting the decimals. A bare ``100.00`` is refused: whether WeChat requires the symbol
  is unconfirmed, and §4's own ``100.00元`` shows the documented way without one.
* time and date: a date is ``2019年10月1日`` (one- or two-digit month and day, as both documented
  examples) or ``2019-12-25`` (two digits each, as the send example); a clock is ``HH:mm`` or
  ``HH:mm:ss`` with a two-digit hour; date and clock are joined by one space; a range is two
  points joined by ``~`` with at most one space either side. The date must exist. ``9:42``,
  ``2019-2-5``, ``2019/12/25`` and a full-width ``～`` are refused.
* enum: the value equals a listed value exactly; when the registry holds no list, nothing passes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from types import MappingProxyType
from typing import Any, Literal

from wxsub.errors import InvalidData

Problem = Literal[
    "missing", "empty", "unknown_keyword", "too_long", "bad_characters", "bad_format", "not_in_enum"
]
Shaping = Literal["ellipsis", "cut"]
CharClass = Callable[[str], bool]

ELLIPSIS = "…"


def length(value: str) -> int:
    """Length as WeChat is taken to count it: UTF-16 code units.

    That is ``String.prototype.length`` in the mini program's JavaScript, and the measure of
    the one observation in §4 (a ``thing`` whose ``.length === 22`` was rejected as over 20).
    A character outside the BMP (an emoji, 𠮷) counts 2; no rule accepts one anyway, so the
    choice only shows in the length a violation reports, which then matches what a JS
    developer measures.
    """
    return len(value.encode("utf-16-le", "surrogatepass")) // 2


def is_chinese(char: str) -> bool:
    code = ord(char)
    return 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF


def is_letter(char: str) -> bool:
    return char.isascii() and char.isalpha()


def is_digit(char: str) -> bool:
    return "0" <= char <= "9"


def is_symbol(char: str) -> bool:
    return ord(char) <= 0xFFFF and unicodedata.category(char)[0] in "PS"


def is_space(char: str) -> bool:
    return char == " "


def is_currency(char: str) -> bool:
    return ord(char) <= 0xFFFF and unicodedata.category(char) == "Sc"


def _any_of(*classes: CharClass) -> CharClass:
    return lambda char: any(member(char) for member in classes)


_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_DATE_CN = re.compile(r"([0-9]{4})年([0-9]{1,2})月([0-9]{1,2})日")
_DATE_ISO = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_CLOCK = re.compile(r"([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?")
_RANGE = re.compile(r"(.+?) ?~ ?(.+)")


def _is_date(text: str) -> bool:
    found = _DATE_CN.fullmatch(text) or _DATE_ISO.fullmatch(text)
    if found is None:
        return False
    year, month, day = (int(part) for part in found.groups())
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def _is_clock(text: str) -> bool:
    found = _CLOCK.fullmatch(text)
    if found is None:
        return False
    hour, minute, second = found.groups()
    return int(hour) < 24 and int(minute) < 60 and int(second or 0) < 60


def _is_dated_clock(text: str) -> bool:
    day, space, clock = text.partition(" ")
    return bool(space) and _is_date(day) and _is_clock(clock)


def _time_point(text: str) -> bool:
    return _is_clock(text) or _is_dated_clock(text)


def _date_point(text: str) -> bool:
    return _is_date(text) or _is_dated_clock(text)


def _point_or_range(point: Callable[[str], bool]) -> Callable[[str], bool]:
    def form(value: str) -> bool:
        if "~" not in value:
            return point(value)
        found = _RANGE.fullmatch(value)
        return found is not None and point(found.group(1)) and point(found.group(2))

    return form


def _number_form(value: str) -> bool:
    return _DECIMAL.fullmatch(value) is not None


def _amount_form(value: str) -> bool:
    body = value.removesuffix("元")
    has_yuan = body != value
    has_symbol = body[:1] != "" and is_currency(body[0])
    digits = body[1:] if has_symbol else body
    return (has_symbol or has_yuan) and _DECIMAL.fullmatch(digits) is not None


def _name_form(value: str) -> bool:
    return any(is_chinese(char) or is_letter(char) for char in value)


def _car_form(value: str) -> bool:
    return not any(is_chinese(char) for char in value[1:-1])


@dataclass(frozen=True)
class Rule:
    """One keyword type of §4.

    ``limit`` counts characters (:func:`length`), or digits when ``counts`` says so;
    ``chinese_limit`` replaces it when the value holds any Chinese character (``name``).
    ``chars`` admits each character, ``form`` the whole value; ``None`` checks nothing.
    ``shaping`` is what ``fit`` may do to an over-long value.
    """

    name: str
    allowed: str
    limit: int | None = None
    chinese_limit: int | None = None
    chars: CharClass | None = None
    form: Callable[[str], bool] | None = None
    form_text: str = ""
    counts: Literal["characters", "digits"] = "characters"
    shaping: Shaping | None = None

    def limit_for(self, value: str) -> int | None:
        if self.chinese_limit is not None and any(is_chinese(char) for char in value):
            return self.chinese_limit
        return self.limit

    def measure(self, value: str) -> int:
        if self.counts == "digits":
            return sum(1 for char in value if is_digit(char))
        return length(value)


_TEXT = _any_of(is_chinese, is_digit, is_letter, is_symbol, is_space)
_TIME_TEXT = (
    "a 24-hour time HH:mm or HH:mm:ss, optionally after a date (2019年10月1日 or 2019-10-01) "
    "and a space; a range is two of these joined by ~"
)
_DATE_TEXT = (
    "a date 2019年10月1日 or 2019-10-01, optionally followed by a space and a 24-hour time "
    "HH:mm or HH:mm:ss; a range is two of these joined by ~"
)

_TABLE: tuple[Rule, ...] = (
    Rule("thing", "Chinese, letters, digits, symbols and spaces", 20, chars=_TEXT, shaping="ellipsis"),
    Rule(
        "short_thing",
        "Chinese, letters, digits, symbols and spaces (limit undocumented: the strict reading, 5)",
        5,
        chars=_TEXT,
    ),
    Rule(
        "number",
        "digits, with at most one decimal point between digits",
        32,
        chars=_any_of(is_digit, ".".__eq__),
        form=_number_form,
        form_text="digits with at most one decimal point between digits",
    ),
    Rule("letter", "letters A-Z a-z only", 32, chars=is_letter),
    Rule("symbol", "symbols only", 5, chars=is_symbol),
    Rule(
        "character_string",
        "letters, digits and symbols (no Chinese)",
        32,
        chars=_any_of(is_digit, is_letter, is_symbol),
        shaping="cut",
    ),
    Rule("time", _TIME_TEXT, form=_point_or_range(_time_point), form_text=_TIME_TEXT),
    Rule("date", _DATE_TEXT, form=_point_or_range(_date_point), form_text=_DATE_TEXT),
    Rule(
        "amount",
        "one currency symbol before the number (¥ $ € £ ￥ …) or 元 after it, or both; "
        "up to 10 digits in all, decimals allowed",
        10,
        chars=_any_of(is_digit, is_currency, ".".__eq__, "元".__eq__),
        form=_amount_form,
        form_text="a number with a leading currency symbol or a trailing 元",
        counts="digits",
    ),
    Rule("phone_number", "digits and symbols", 17, chars=_any_of(is_digit, is_symbol)),
    Rule(
        "car_number",
        "letters and digits; Chinese only as the first or last character",
        8,
        chars=_any_of(is_chinese, is_letter, is_digit),
        form=_car_form,
        form_text="a plate with Chinese only as its first or last character",
    ),
    Rule(
        "name",
        "up to 10 characters when it holds any Chinese (Chinese, letters, symbols, spaces); "
        "otherwise up to 20 letters, symbols and spaces, at least one a letter",
        20,
        chinese_limit=10,
        chars=_any_of(is_chinese, is_letter, is_symbol, is_space),
        form=_name_form,
        form_text="a name with at least one Chinese character or letter",
        shaping="cut",
    ),
    Rule("phrase", "Chinese characters only", 5, chars=is_chinese),
    Rule("enum", "one of the template's enumerated values"),
)

RULES: Mapping[str, Rule] = MappingProxyType({rule.name: rule for rule in _TABLE})
_ALIASES = MappingProxyType({"enum_string": "enum"})
_UNCHECKED = "not checked by wxsub (a rule wechat-api.md §4 does not list)"


def rule_of(keyword: str) -> str:
    """The rule a keyword name carries: ``thing1`` → ``thing``, ``enum_string2`` → ``enum``."""
    prefix = keyword.rstrip("0123456789")
    return _ALIASES.get(prefix, prefix)


def describe(rule: str) -> dict[str, Any]:
    """``{"rule", "limit", "allowed"}`` for API output; a rule §4 lacks shows as unchecked."""
    known = RULES.get(_ALIASES.get(rule, rule))
    if known is None:
        return {"rule": rule, "limit": None, "allowed": _UNCHECKED}
    return {"rule": known.name, "limit": known.limit, "allowed": known.allowed}


@dataclass(frozen=True)
class Keyword:
    name: str
    rule: str
    enum_values: tuple[str, ...] = ()


_KEY = re.compile(r"\{\{([a-z_]+[0-9]+)\.DATA\}\}")


def parse_content(content: str, enum_lists: Sequence[Mapping[str, Any]] | None = None) -> tuple[Keyword, ...]:
    """The keywords of a gettemplate ``content``, in order of first appearance.

    ``enum_lists`` is gettemplate's ``keywordEnumValueList``; its values attach to enum
    keywords only, matched by ``keywordCode`` with or without the ``.DATA`` suffix.
    """
    enums = _enum_table(enum_lists or ())
    names = dict.fromkeys(_KEY.findall(content))
    keywords = []
    for name in names:
        rule = rule_of(name)
        values = enums.get(name, ()) if rule == "enum" else ()
        keywords.append(Keyword(name, rule, values))
    return tuple(keywords)


def _enum_table(enum_lists: Sequence[Mapping[str, Any]]) -> dict[str, tuple[str, ...]]:
    table: dict[str, tuple[str, ...]] = {}
    for item in enum_lists:
        code, values = item.get("keywordCode"), item.get("enumValueList")
        if isinstance(code, str) and isinstance(values, list):
            table[code.removesuffix(".DATA")] = tuple(v for v in values if isinstance(v, str))
    return table


@dataclass(frozen=True)
class Violation:
    """One keyword that breaks its rule.

    ``length`` is measured in the unit ``limit`` counts (digits for ``amount``, else
    :func:`length`); ``limit`` is ``None`` for rules without one (time, date, enum).
    """

    keyword: str
    rule: str | None
    problem: Problem
    length: int | None
    limit: int | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Fault:
    problem: Problem
    detail: str
    length: int
    limit: int | None


def _char_fault(rule: Rule, value: str) -> _Fault | None:
    if rule.chars is None:
        return None
    for position, char in enumerate(value, start=1):
        if not rule.chars(char):
            detail = (
                f"holds {char!r} (U+{ord(char):04X}) at character {position}; "
                f"{rule.name} allows {rule.allowed}"
            )
            return _Fault("bad_characters", detail, rule.measure(value), rule.limit_for(value))
    return None


def _form_fault(rule: Rule, value: str) -> _Fault | None:
    if rule.form is None or rule.form(value):
        return None
    detail = f"is not {rule.form_text}"
    return _Fault("bad_format", detail, rule.measure(value), rule.limit_for(value))


def _length_fault(rule: Rule, value: str) -> _Fault | None:
    limit, size = rule.limit_for(value), rule.measure(value)
    if limit is None or size <= limit:
        return None
    detail = f"is {size} {rule.counts}; the limit is {limit}"
    return _Fault("too_long", detail, size, limit)


def _enum_fault(value: str, enum_values: Sequence[str]) -> _Fault | None:
    if value in enum_values:
        return None
    choices = ", ".join(enum_values) if enum_values else "the template lists none"
    return _Fault("not_in_enum", f"is not one of the template's values ({choices})", length(value), None)


def _fault(rule_name: str, value: str, enum_values: Sequence[str]) -> _Fault | None:
    rule = RULES.get(rule_name)
    if not value.strip():
        limit = rule.limit_for(value) if rule else None
        return _Fault("empty", "is empty", length(value), limit)
    if rule is None:
        return None
    if rule.name == "enum":
        return _enum_fault(value, enum_values)
    return _char_fault(rule, value) or _form_fault(rule, value) or _length_fault(rule, value)


def _violation(keyword: str, rule: str, fault: _Fault) -> Violation:
    subject = keyword or "the value"
    message = f"{subject} ({rule}) {fault.detail}"
    return Violation(keyword, rule, fault.problem, fault.length, fault.limit, message)


def check_value(rule: str, value: str, enum_values: Sequence[str] = ()) -> Violation | None:
    """The value's violation of ``rule``, or ``None``; ``keyword`` is left empty.

    Whitespace-only counts as empty: WeChat's own "is empty" check is undocumented, and a
    blank card line is never what a caller meant. A rule §4 does not list passes any
    non-empty value.
    """
    name = _ALIASES.get(rule, rule)
    fault = _fault(name, value, enum_values)
    return None if fault is None else _violation("", name, fault)


def fit_value(rule: str, value: str) -> str:
    """``value`` shortened to its rule's limit when the rule allows shaping, else unchanged.

    ``thing`` ends a shortened value with ``…`` (a symbol, which thing allows: it is prose);
    ``name`` and ``character_string`` are cut bare, because there a trailing mark would read
    as part of the name or the code. Trailing spaces left by the cut are dropped.
    """
    known = RULES.get(rule)
    limit = known.limit_for(value) if known else None
    if known is None or known.shaping is None or limit is None or length(value) <= limit:
        return value
    if known.shaping == "ellipsis":
        return _cut(value, limit - length(ELLIPSIS)).rstrip() + ELLIPSIS
    return _cut(value, limit).rstrip()


def _cut(value: str, units: int) -> str:
    kept: list[str] = []
    used = 0
    for char in value:
        used += length(char)
        if used > units:
            break
        kept.append(char)
    return "".join(kept)


def validate(
    keywords: Sequence[Keyword], data: Mapping[str, str], *, fit: bool = False
) -> tuple[dict[str, str], list[Violation]]:
    """The values to send (shaped when ``fit``) and every violation; never raises for bad data.

    A keyword of the template absent from ``data`` is ``missing``; a key of ``data`` the
    template lacks is ``unknown_keyword``. WeChat's handling of extra keys is unconfirmed
    (§4, §10.11): a stray key is most often a misspelt one, so wxsub refuses it rather than
    let WeChat silently drop it.
    """
    values: dict[str, str] = {}
    violations: list[Violation] = []
    for keyword in keywords:
        outcome = _check_keyword(keyword, data, fit)
        if isinstance(outcome, Violation):
            violations.append(outcome)
        else:
            values[keyword.name] = outcome
    known = {keyword.name for keyword in keywords}
    violations.extend(_unknown(key, known) for key in data if key not in known)
    return values, violations


def _check_keyword(keyword: Keyword, data: Mapping[str, str], fit: bool) -> str | Violation:
    if keyword.name not in data:
        message = f"{keyword.name} ({keyword.rule}) is missing from data"
        limit = describe(keyword.rule)["limit"]
        return Violation(keyword.name, keyword.rule, "missing", None, limit, message)
    value = data[keyword.name]
    if not isinstance(value, str):
        message = f"{keyword.name} ({keyword.rule}) is not a string"
        return Violation(keyword.name, keyword.rule, "bad_format", None, None, message)
    if fit:
        value = fit_value(keyword.rule, value)
    fault = _fault(keyword.rule, value, keyword.enum_values)
    return value if fault is None else _violation(keyword.name, keyword.rule, fault)


def _unknown(key: str, known: set[str]) -> Violation:
    listed = ", ".join(sorted(known)) or "none"
    message = f"{key} is not a keyword of this template (its keywords: {listed})"
    return Violation(key, None, "unknown_keyword", None, None, message)


def violations_error(violations: Sequence[Violation]) -> InvalidData:
    """The 422 ``invalid_data`` naming each failing keyword, its rule, length and limit."""
    return InvalidData(
        "data breaks the template's keyword rules",
        violations=[violation.as_dict() for violation in violations],
    )


__all__ = [
    "RULES",
    "Keyword",
    "Rule",
    "Violation",
    "check_value",
    "describe",
    "fit_value",
    "length",
    "parse_content",
    "rule_of",
    "validate",
    "violations_error",
]
