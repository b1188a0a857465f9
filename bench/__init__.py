"""Benchmarks: figures and ratios printed by ``make bench``; never run by ``make test``."""

from typing import Any


def long_term_enum(client: Any) -> str:
    """A valid value for the seeded long-term template's enum keyword, as ``GET /templates`` lists it."""
    from sandbox import SEEDED_LONG_TERM

    templates = client.get("/templates").json()["templates"]
    return str(
        next(
            k["enum_values"][0]
            for t in templates
            if t["template_id"] == SEEDED_LONG_TERM
            for k in t["keywords"]
            if k["rule"] == "enum"
        )
    )
