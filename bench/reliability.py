"""``make reliability``'s table: the figures tests/reliability recorded, one row per part.

Each row says how many cases its test actually ran, what it measured, the goal, and PASS only if
the test passed with the figure at its goal. A part no test recorded is a FAIL row too. Exit
status 1 when any row fails. ``python -m bench.reliability [results.json]``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "reliability.json"

OPENAPI = "OpenAPI fuzz (schemathesis)"
PUSH_FUZZ = "Push fuzzing"
PUSH_MEMORY = "Push function peak memory"
SESSION_TOKENS = "Forged session tokens"
PARALLEL_SENDS = "50 parallel sends on 1 grant"
PARALLEL_PUSHES = "50 parallel identical pushes"
SECRETS = "Secrets in logs and answers"
PARTS = (OPENAPI, PUSH_FUZZ, PUSH_MEMORY, SESSION_TOKENS, PARALLEL_SENDS, PARALLEL_PUSHES, SECRETS)


def rows(data: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    recorded = data.get("parts", {})
    table = []
    for part in PARTS:
        row = recorded.get(part)
        if row is None:
            table.append((part, "-", "not run", "-", "FAIL"))
            continue
        verdict = "PASS" if row.get("passed") else "FAIL"
        table.append((part, f"{row['cases']:,}", str(row["figure"]), str(row["goal"]), verdict))
    return table


def render(data: dict[str, Any]) -> list[str]:
    table = rows(data)
    header = ("Part", "Cases", "Figure", "Goal", "Result")
    widths = [max(len(r[i]) for r in (header, *table)) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return (
            "| "
            + " | ".join(
                c.rjust(w) if i == 1 else c.ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
            + " |"
        )

    title = (
        f"wxsub reliability, {data.get('mode', '?')} form: {data.get('started', '?')}, "
        f"{data.get('machine', '?')}, Python {data.get('python', '?')}"
    )
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    failed = sum(1 for r in table if r[4] != "PASS")
    verdict = "every figure at its goal" if not failed else f"{failed} of {len(table)} parts FAIL"
    return [title, "", line(header), rule, *(line(r) for r in table), "", verdict]


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else os.environ.get("WXSUB_RELIABILITY_RESULTS") or RESULTS)
    if not path.exists():
        print(f"no results at {path}: run `make reliability` (or pytest tests/reliability) first")
        return 1
    data = json.loads(path.read_text())
    for text in render(data):
        print(text)
    return 0 if all(r[4] == "PASS" for r in rows(data)) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
