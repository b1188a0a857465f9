"""Keyword value rules of subscription-message templates, as the sandbox enforces them.

Written from the rules table in wechat-api.md §4 alone, independently of the product's
validators, so that the two implementations can be compared and catch each other.

Where §4 is silent or UNCONFIRMED, the sandbox takes these readings:

* Length is counted in Unicode code points (``len(str)``): an emoji outside the BMP is one
  character, a ZWJ emoji sequence is several (and its U+200D is refused: it is no symbol).
* A *Chinese* character is a CJK unified ideograph: U+3400–U+4DBF, U+4E00–U+9FFF,
  U+F900–U+FAFF (compatibility) and U+20000–U+323AF (extensions B–H).
* A *letter* is ASCII ``A-Z``/``a-z``; a *digit* is ASCII ``0-9`` (full-width digits are not).
* A *symbol* is any character whose Unicode category is punctuation (P*) or symbol (S*):
  ASCII punctuation, full-width punctuation, currency signs, most emoji. A space is not a symbol.
* ``thing`` ("Chinese, digits, letters or symbols in any combination"): 1–20 characters, each
  Chinese, a letter, a digit, a symbol or the ASCII space (kana, hangul, full-width letters and
  digits, Greek, line breaks and other control or format characters are refused).
  ``short_thing`` is undocumented: the same with at most 5 characters.
* ``number``: ASCII digits with at most one decimal point between digits (no sign, no leading or
  trailing point), at most 32 characters including the point.
* ``letter``: 1–32 ASCII letters. ``symbol``: 1–5 symbols.
* ``character_string``: 1–32 characters, each a letter, digit or symbol (no Chinese, no space).
* ``phone_number``: 1–17 characters, each a digit or symbol (no space, no letters).
* ``car_number``: 1–8 characters; each is a letter or digit, except that the first and the last
  may be Chinese.
* ``name``: with at least one Chinese character, at most 10 characters drawn from Chinese, letters,
  symbols and the space; otherwise at most 20 characters drawn from letters, symbols and the space,
  with at least one letter. Digits are never allowed.
* ``phrase``: 1–5 Chinese characters. (Production rejected one 5-character phrase for an
  undocumented reason; that check is not modelled.)
* ``amount``: an optional single currency sign (category Sc, e.g. ``¥ ￥ $``), then digits with an
  optional decimal part (at most 10 digits in all), then an optional trailing ``元``. §4 says "1
  currency symbol" but its own example ``100.00元`` has none, so the sign is optional. No sign
  (``-``), no thousands separators.
* ``time`` / ``date`` (grammar UNCONFIRMED): a *date* is ``YYYY年M月D日`` or ``YYYY-M-D`` (month and
  day with one or two digits, a real calendar date); a *clock time* is ``H:mm`` or ``H:mm:ss``
  (hours 0–23, one or two digits). A ``time`` point is a clock time, optionally preceded by a date
  and one space; a ``date`` point is a date, optionally followed by one space and a clock time. A
  value is one point, or two points of the same rule joined by ``~`` (spaces around ``~`` allowed).
  So ``2019年10月1日 15:01~16:00`` is a valid ``time`` but not a valid ``date``.
* ``enum`` (keywords named ``enum_stringN``): the value must equal one of the template's values.
* The empty string is never valid (WeChat answers it with ``... value is empty``).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable

RULES: frozenset[str] = frozenset(
    {
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
)

_KEY = re.compile(r"^([a-z_]+?)_?([0-9]+)$")
_CHINESE_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x323AF))

_DATE_CN = r"([0-9]{4})年([0-9]{1,2})月([0-9]{1,2})日"
_DATE_ISO = r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})"
_CLOCK = re.compile(r"(?:[01]?[0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9])?")
_DATE_FORMS = (re.compile(_DATE_CN), re.compile(_DATE_ISO))
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_RANGE = re.compile(r" *~ *")


def rule_of(key: str) -> str:
    """The rule of a template keyword: ``thing1`` → ``thing``, ``enum_string2`` → ``enum``.

    Raises ValueError for a key without trailing digits or with an unknown prefix.
    """
    match = _KEY.match(key)
    if match is None:
        raise ValueError(f"not a keyword name: {key!r}")
    prefix = match.group(1).rstrip("_")
    rule = "enum" if prefix == "enum_string" else prefix
    if rule not in RULES:
        raise ValueError(f"unknown keyword rule {prefix!r} in {key!r}")
    return rule


def value_ok(rule: str, value: str, enum_values: list[str] | None = None) -> bool:
    """Whether ``value`` satisfies keyword rule ``rule`` (a §4 rule name; ``enum_string`` is
    accepted as an alias of ``enum``).

    ``enum_values`` is only read for ``enum``; without it every enum value is rejected.
    Raises ValueError for a rule the table does not define.
    """
    if rule == "enum_string":
        rule = "enum"
    if rule not in RULES:
        raise ValueError(f"unknown keyword rule {rule!r}")
    if not isinstance(value, str) or value == "":
        return False
    if rule == "enum":
        return enum_values is not None and value in enum_values
    return _CHECKS[rule](value)


def is_chinese(ch: str) -> bool:
    """A CJK unified ideograph (the ranges in the module docstring)."""
    code = ord(ch)
    return any(low <= code <= high for low, high in _CHINESE_RANGES)


def _is_letter(ch: str) -> bool:
    return ("a" <= ch <= "z") or ("A" <= ch <= "Z")


def _is_digit(ch: str) -> bool:
    return "0" <= ch <= "9"


def _is_symbol(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "PS"


def _thing(value: str, limit: int = 20) -> bool:
    return len(value) <= limit and all(
        is_chinese(ch) or _is_letter(ch) or _is_digit(ch) or _is_symbol(ch) or ch == " " for ch in value
    )


def _short_thing(value: str) -> bool:
    return _thing(value, 5)


def _number(value: str) -> bool:
    return len(value) <= 32 and _NUMBER.fullmatch(value) is not None


def _letter(value: str) -> bool:
    return len(value) <= 32 and all(_is_letter(ch) for ch in value)


def _symbol(value: str) -> bool:
    return len(value) <= 5 and all(_is_symbol(ch) for ch in value)


def _character_string(value: str) -> bool:
    return len(value) <= 32 and all(_is_letter(ch) or _is_digit(ch) or _is_symbol(ch) for ch in value)


def _phone_number(value: str) -> bool:
    return len(value) <= 17 and all(_is_digit(ch) or _is_symbol(ch) for ch in value)


def _car_number(value: str) -> bool:
    if len(value) > 8:
        return False
    last = len(value) - 1
    return all(
        _is_letter(ch) or _is_digit(ch) or (i in (0, last) and is_chinese(ch)) for i, ch in enumerate(value)
    )


def _name(value: str) -> bool:
    if not all(is_chinese(ch) or _is_letter(ch) or _is_symbol(ch) or ch == " " for ch in value):
        return False
    if any(is_chinese(ch) for ch in value):
        return len(value) <= 10
    return len(value) <= 20 and any(_is_letter(ch) for ch in value)


def _phrase(value: str) -> bool:
    return len(value) <= 5 and all(is_chinese(ch) for ch in value)


def _amount(value: str) -> bool:
    body = value
    if unicodedata.category(body[0]) == "Sc":
        body = body[1:]
    body = body.removesuffix("元")
    if _NUMBER.fullmatch(body) is None:
        return False
    return sum(ch.isdigit() for ch in body) <= 10


def _date_ok(text: str) -> bool:
    for form in _DATE_FORMS:
        match = form.fullmatch(text)
        if match is not None:
            year, month, day = (int(part) for part in match.groups())
            try:
                dt.date(year, month, day)
            except ValueError:
                return False
            return True
    return False


def _clock_ok(text: str) -> bool:
    return _CLOCK.fullmatch(text) is not None


def _time_point(text: str) -> bool:
    if _clock_ok(text):
        return True
    date, sep, clock = text.rpartition(" ")
    return sep == " " and _date_ok(date) and _clock_ok(clock)


def _date_point(text: str) -> bool:
    if _date_ok(text):
        return True
    date, sep, clock = text.partition(" ")
    return sep == " " and _date_ok(date) and _clock_ok(clock)


def _points(value: str, point: Callable[[str], bool]) -> bool:
    parts = _RANGE.split(value)
    return len(parts) in (1, 2) and all(point(part) for part in parts)


def _time(value: str) -> bool:
    return _points(value, _time_point)


def _date(value: str) -> bool:
    return _points(value, _date_point)


_CHECKS: dict[str, Callable[[str], bool]] = {
    "thing": _thing,
    "short_thing": _short_thing,
    "number": _number,
    "letter": _letter,
    "symbol": _symbol,
    "character_string": _character_string,
    "time": _time,
    "date": _date,
    "amount": _amount,
    "phone_number": _phone_number,
    "car_number": _car_number,
    "name": _name,
    "phrase": _phrase,
}
