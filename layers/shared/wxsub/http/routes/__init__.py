"""One Router per area; a function includes the routers it serves, the docs function all of them.

Importing one route module loads only that area's code (login's sessions, push's AES), so this
package imports none itself: :func:`all_routers` does, for the OpenAPI document.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.api_gateway import Router


def all_routers() -> tuple[Router, ...]:
    from wxsub.http.routes import campaigns, login, messages, push, subscriptions, templates

    return (
        login.router,
        subscriptions.router,
        messages.router,
        campaigns.router,
        templates.router,
        push.router,
    )
