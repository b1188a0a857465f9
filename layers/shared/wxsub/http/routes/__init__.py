"""One Router per area; a function includes the routers it serves, the docs function all of them."""

from wxsub.http.routes import campaigns, login, messages, push, subscriptions, templates

ALL_ROUTERS = (
    login.router,
    subscriptions.router,
    messages.router,
    campaigns.router,
    templates.router,
    push.router,
)
