"""wxsub: look at and run a wxsub stack from a terminal.

It talks to the stack's own API (SigV4-signed IAM routes) and, for the access token, reads its
record in SSM without ever printing the token. By default it targets the running `make local`
(WXSUB_API_URL and WXSUB_AWS_URL as its banner exports them, else the one on port $PORT or
3000); --stack NAME targets a deployed stack: the API URL comes from the stack's outputs and
requests are signed with your AWS credentials. --json prints the API's answers for scripts;
otherwise, tables.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
import httpx
from botocore.auth import SigV4Auth as BotocoreSigV4
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

LOCAL_CREDENTIALS = ("testing", "testing")
# WeChat's template ids may start with "-" (zun-Lz..., -zJVB...): commands taking one read an
# unknown "-..." as an argument rather than refusing it as an option
TAKES_IDS = {"ignore_unknown_options": True}


class Failed(click.ClickException):
    """An error the user can act on, printed without a traceback; exit status 1."""


@dataclass
class Target:
    api: str
    region: str
    credentials: Credentials
    aws_endpoint: str | None  # the local AWS; None for a deployed stack, or when make local did not say
    token_parameter: str
    as_json: bool
    refresher: str = "RefreshTokenFunction"  # the function force-refresh invokes
    local: bool = False  # the running make local, not a deployed stack

    def aws_client(self, service: str, local_endpoint: str | None, **config: Any) -> Any:
        """A boto3 client: for a deployed stack, the caller's own; locally, at ``local_endpoint``."""
        import boto3
        from botocore.config import Config

        options: dict[str, Any] = {"region_name": self.region, "config": Config(**config)}
        if self.local:
            if not local_endpoint:
                raise Failed(
                    "the local AWS's URL is unknown: export WXSUB_AWS_URL as make local's banner shows"
                )
            options |= {
                "endpoint_url": local_endpoint,
                "aws_access_key_id": self.credentials.access_key,
                "aws_secret_access_key": self.credentials.secret_key,
            }
        return boto3.client(service, **options)

    def invoke(self, function: str, payload: dict[str, Any]) -> Any:
        """Lambda's Invoke of one of the stack's functions: its answer, or Failed with its error."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            # the local stack answers Lambda's Invoke on the API's port; never retried, since a
            # retried force refresh would meet its own 30 s spacing and hide that it rotated
            client = self.aws_client("lambda", self.api, retries={"total_max_attempts": 1}, read_timeout=90)
            answer = client.invoke(FunctionName=function, Payload=json.dumps(payload).encode())
        except ClientError as exc:
            raise Failed(f"cannot invoke {function}: {exc.response['Error'].get('Message', exc)}") from None
        except BotoCoreError as exc:
            raise Failed(f"cannot invoke {function} ({type(exc).__name__}): is the stack running?") from None
        result = json.loads(answer["Payload"].read() or b"null")
        if answer.get("FunctionError"):
            raise Failed(f"{function} failed: {result.get('errorType')}: {result.get('errorMessage')}")
        return result

    def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """A signed request to the API: its JSON answer, or Failed with its code and message."""
        query = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in (params or {}).items() if v is not None)
        url = self.api + path + (f"?{query}" if query else "")
        body = json.dumps(json_body, ensure_ascii=False).encode() if json_body is not None else b""
        sent = dict(headers or {})
        if json_body is not None:
            sent["content-type"] = "application/json"
        signed = AWSRequest(method=method, url=url, data=body, headers=sent)
        BotocoreSigV4(self.credentials, "execute-api", self.region).add_auth(signed)
        try:
            answer = httpx.request(method, url, content=body, headers=dict(signed.headers), timeout=60)
        except httpx.HTTPError as exc:
            raise Failed(
                f"cannot reach the API at {self.api} ({type(exc).__name__}): is the stack running?"
            ) from None
        try:
            data = answer.json()
        except ValueError:
            data = {"error": f"http_{answer.status_code}", "message": answer.text[:300]}
        if answer.status_code >= 400:
            if answer.status_code == 403 and "error" not in data:
                raise Failed(f"403: the API refused your AWS credentials: {data.get('message', '')}")
            raise Failed(f"{answer.status_code} {data.get('error', '')}: {data.get('message', '')}")
        return data


def _enc(value: Any) -> str:
    """RFC 3986 encoding, as SigV4 signs a query."""
    return quote(str(value), safe="-_.~")


def _local_target(as_json: bool) -> Target:
    key = os.environ.get("AWS_ACCESS_KEY_ID") or LOCAL_CREDENTIALS[0]
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY") or LOCAL_CREDENTIALS[1]
    region = os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    api = os.environ.get("WXSUB_API_URL")
    aws = os.environ.get("WXSUB_AWS_URL")
    record_file = Path(tempfile.gettempdir()) / f"wxsub-local-{os.environ.get('PORT') or 3000}.json"
    if record_file.exists():
        record = json.loads(record_file.read_text())
        api = api or record.get("api_url")
        aws = aws or record.get("aws_endpoint")
        region = record.get("region", region)
    if not api:
        raise Failed("no local stack is running: start one with `make local`, or give --stack NAME")
    return Target(
        api.rstrip("/"), region, Credentials(key, secret), aws, "/wxsub/dev/access-token", as_json, local=True
    )


def _deployed_target(stack: str, as_json: bool) -> Target:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    session = boto3.session.Session()
    try:
        outputs = (
            session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
        )
        credentials = session.get_credentials()
    except (BotoCoreError, ClientError) as exc:
        raise Failed(f"cannot read the stack {stack}: {exc}") from None
    if credentials is None:
        raise Failed("no AWS credentials found (aws configure, or AWS_PROFILE)")
    values = {o["OutputKey"]: o["OutputValue"] for o in outputs}
    if "ApiUrl" not in values:
        raise Failed(f"the stack {stack} has no ApiUrl output: is it a wxsub stack?")
    return Target(
        values["ApiUrl"].rstrip("/"),
        session.region_name or "us-east-1",
        credentials.get_frozen_credentials(),  # type: ignore[arg-type]
        None,
        values.get("AccessTokenParameter", "/wxsub/prod/access-token"),
        as_json,
        values.get("RefreshTokenFunctionName", "RefreshTokenFunction"),
    )


def _print(
    target: Target, data: Any, rows: list[list[Any]] | None = None, header: list[str] | None = None
) -> None:
    if target.as_json or rows is None:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    table = [header or []] + [[str(c) for c in row] for row in rows]
    widths = [max(_width(r[i]) for r in table if i < len(r)) for i in range(len(table[0]))]
    for row in table:
        click.echo("  ".join(cell + " " * (widths[i] - _width(cell)) for i, cell in enumerate(row)).rstrip())


def _width(text: str) -> int:
    """Display width: CJK characters take two columns."""
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


@click.group(help=__doc__)
@click.option("--stack", metavar="NAME", help="A deployed stack (default: the running make local)")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON, for scripts")
@click.pass_context
def main(ctx: click.Context, stack: str | None, as_json: bool) -> None:
    ctx.obj = (stack, as_json)


def _target(ctx: click.Context) -> Target:
    stack, as_json = ctx.obj
    return _deployed_target(stack, as_json) if stack else _local_target(as_json)


# -- templates ------------------------------------------------------------------------------------


@main.group(help="The template registry and WeChat's public library")
def templates() -> None:
    pass


@templates.command("list", help="The registry: each template, its alias and keywords")
@click.pass_context
def templates_list(ctx: click.Context) -> None:
    target = _target(ctx)
    data = target.call("GET", "/templates")
    rows = [
        [
            t["template_id"],
            t.get("alias") or "-",
            t["kind"],
            t["title"],
            " ".join(k["name"] for k in t["keywords"]),
        ]
        for t in data["templates"]
    ]
    _print(target, data, rows, ["TEMPLATE ID", "ALIAS", "KIND", "TITLE", "KEYWORDS"])


@templates.command("sync", help="Sync the registry from WeChat now")
@click.pass_context
def templates_sync(ctx: click.Context) -> None:
    target = _target(ctx)
    data = target.call("POST", "/templates/sync")
    _print(target, data, [[data["templates"], data["removed"]]], ["TEMPLATES", "REMOVED"])


@templates.command("search", help="Titles of the public library containing KEYWORD")
@click.argument("keyword", default="")
@click.option("--category", help="Category ids, comma-separated (default: all)")
@click.pass_context
def templates_search(ctx: click.Context, keyword: str, category: str | None) -> None:
    target = _target(ctx)
    data = target.call(
        "GET", "/templates/library", params={"keyword": keyword, "category": category, "limit": 100}
    )
    rows = [[t["tid"], t["type"], t["category_id"], t["title"]] for t in data["titles"]]
    _print(target, data, rows, ["TID", "TYPE", "CATEGORY", "TITLE"])


@templates.command("keywords", help="A library title's keywords (kid, name, rule, example)")
@click.argument("tid", type=int)
@click.pass_context
def templates_keywords(ctx: click.Context, tid: int) -> None:
    target = _target(ctx)
    data = target.call("GET", f"/templates/library/{tid}")
    rows = [[k["kid"], k["name"], k["rule"], k["example"]] for k in data["keywords"]]
    _print(target, data, rows, ["KID", "NAME", "RULE", "EXAMPLE"])


@templates.command("add", help="Add library title TID with keyword ids KIDS (2 to 5) to the account")
@click.argument("tid", type=int)
@click.argument("kids", type=int, nargs=-1, required=True)
@click.option("--scene", required=True, help="What the message is for (at most 15 characters)")
@click.option("--alias", help="A name for it, e.g. order_shipped")
@click.pass_context
def templates_add(ctx: click.Context, tid: int, kids: tuple[int, ...], scene: str, alias: str | None) -> None:
    target = _target(ctx)
    body: dict[str, Any] = {"tid": tid, "kids": list(kids), "scene": scene}
    if alias:
        body["alias"] = alias
    data = target.call("POST", "/templates", json_body=body)
    _print(
        target,
        data,
        [[data["template_id"], data.get("alias") or "-", data["title"]]],
        ["TEMPLATE ID", "ALIAS", "TITLE"],
    )


@templates.command(
    "delete",
    help="Delete a template (by id or alias) from the account and the registry",
    context_settings=TAKES_IDS,
)
@click.argument("template")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation")
@click.pass_context
def templates_delete(ctx: click.Context, template: str, yes: bool) -> None:
    target = _target(ctx)
    if not yes:
        click.confirm(f"Delete {template} from the mini program's templates?", abort=True)
    data = target.call("DELETE", f"/templates/{template}")
    _print(target, data, [[data["deleted"]]], ["DELETED"])


@templates.command("alias", help="Name a template of the registry", context_settings=TAKES_IDS)
@click.argument("template_id")
@click.argument("alias")
@click.pass_context
def templates_alias(ctx: click.Context, template_id: str, alias: str) -> None:
    target = _target(ctx)
    data = target.call("PUT", f"/templates/{template_id}/alias", json_body={"alias": alias})
    _print(
        target, data, [[data["template_id"], data["alias"], data["title"]]], ["TEMPLATE ID", "ALIAS", "TITLE"]
    )


# -- messages -------------------------------------------------------------------------------------


@main.command(
    help="Send one message: TEMPLATE is an id or an alias, DATA keyword=value pairs",
    context_settings=TAKES_IDS,
)
@click.argument("openid")
@click.argument("template")
@click.argument("data", nargs=-1, required=True)
@click.option("--key", help="Idempotency-Key (a retry with the same key never sends twice)")
@click.option("--page", help="The page the card opens")
@click.pass_context
def send(
    ctx: click.Context, openid: str, template: str, data: tuple[str, ...], key: str | None, page: str | None
) -> None:
    target = _target(ctx)
    values = {}
    for pair in data:
        name, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not keyword=value", param_hint="DATA")
        values[name] = value
    body: dict[str, Any] = {"openid": openid, "data": values}
    body["template" if _is_alias(template) else "template_id"] = template
    if page:
        body["page"] = page
    answer = target.call(
        "POST", "/messages", json_body=body, headers={"idempotency-key": key} if key else None
    )
    rows = [[answer["status"], answer["message_id"], answer.get("msgid")]]
    _print(target, answer, rows, ["STATUS", "MESSAGE ID", "MSGID"])


def _is_alias(text: str) -> bool:
    return re.fullmatch(r"[a-z][a-z0-9_]{0,63}", text) is not None


@main.group(help="Delivery records")
def messages() -> None:
    pass


@messages.command("show", help="A message's delivery record")
@click.argument("message_id")
@click.pass_context
def messages_show(ctx: click.Context, message_id: str) -> None:
    target = _target(ctx)
    data = target.call("GET", f"/messages/{message_id}")
    rows = [[k, "-" if v is None else v] for k, v in data.items()]
    _print(target, data, rows, ["FIELD", "VALUE"])


# -- grants ---------------------------------------------------------------------------------------


@main.command(
    help="One user's grants per template: one-time sends left, long-term, last answer",
    context_settings=TAKES_IDS,
)
@click.argument("openid")
@click.pass_context
def grants(ctx: click.Context, openid: str) -> None:
    target = _target(ctx)
    data = target.call("GET", f"/grants/{quote(openid, safe='')}")
    rows = [
        [
            g["template_id"],
            g.get("alias") or "-",
            g["one_time"],
            "on" if g["long_term"] else "off",
            g.get("last_status") or "-",
            _when(g.get("updated_at")),
        ]
        for g in data["grants"]
    ]
    _print(target, data, rows, ["TEMPLATE ID", "ALIAS", "ONE-TIME LEFT", "LONG-TERM", "LAST", "UPDATED"])


def _when(epoch: Any) -> str:
    return "-" if not epoch else time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(int(epoch)))


# -- campaigns ------------------------------------------------------------------------------------


@main.group(help="Campaigns: one template to many users through the send queue")
def campaigns() -> None:
    pass


@campaigns.command(
    "create",
    help="TEMPLATE (id or alias) to everyone holding a grant, or to --openid ones",
    context_settings=TAKES_IDS,
)
@click.argument("template")
@click.argument("data", nargs=-1)
@click.option("--openid", "openids", multiple=True, help="A recipient (repeat); default: everyone granted")
@click.option("--key", help="Idempotency-Key")
@click.option(
    "--send-at", help="Start later: an ISO 8601 time with its offset, e.g. 2026-12-24T09:00:00+08:00"
)
@click.pass_context
def campaigns_create(
    ctx: click.Context,
    template: str,
    data: tuple[str, ...],
    openids: tuple[str, ...],
    key: str | None,
    send_at: str | None,
) -> None:
    target = _target(ctx)
    values = dict(pair.partition("=")[::2] for pair in data)
    body: dict[str, Any] = {"data": values, "audience": {"openids": list(openids)} if openids else "granted"}
    if send_at:
        body["send_at"] = send_at
    body["template" if _is_alias(template) else "template_id"] = template
    answer = target.call(
        "POST", "/campaigns", json_body=body, headers={"idempotency-key": key} if key else None
    )
    _campaign_table(target, answer)


def _campaign_table(target: Target, data: dict[str, Any]) -> None:
    counts = data.get("counts") or {}
    rows = [
        [
            data["campaign_id"],
            data["state"],
            data["template_id"],
            " ".join(f"{k}={v}" for k, v in counts.items()),
        ]
    ]
    _print(target, data, rows, ["CAMPAIGN", "STATE", "TEMPLATE", "COUNTS"])


def _campaign_command(name: str, method: str, suffix: str, help_text: str) -> None:
    @campaigns.command(name, help=help_text)
    @click.argument("campaign_id")
    @click.pass_context
    def command(ctx: click.Context, campaign_id: str) -> None:
        target = _target(ctx)
        _campaign_table(target, target.call(method, f"/campaigns/{campaign_id}{suffix}"))


_campaign_command("show", "GET", "", "A campaign's state and counts")
_campaign_command("cancel", "DELETE", "", "Cancel what is not sent yet")
_campaign_command("resume", "POST", "/resume", "Resume a paused campaign")


# -- the access token -----------------------------------------------------------------------------


@main.group(help="WeChat's access token (its value is never shown)")
def token() -> None:
    pass


@token.command("status", help="The stored token's version, age and time left")
@click.pass_context
def token_status(ctx: click.Context) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    target = _target(ctx)
    try:
        parameter = target.aws_client("ssm", target.aws_endpoint).get_parameter(
            Name=target.token_parameter, WithDecryption=True
        )
    except (BotoCoreError, ClientError) as exc:
        raise Failed(f"cannot read {target.token_parameter}: {exc}") from None
    record = json.loads(parameter["Parameter"]["Value"])
    now = time.time()
    written = parameter["Parameter"]["LastModifiedDate"].timestamp()
    expires_at = float(record.get("expires_at") or 0)
    status = {
        "parameter": target.token_parameter,
        "version": parameter["Parameter"]["Version"],
        "age_seconds": int(now - written),
        "expires_in_seconds": int(expires_at - now) if expires_at else None,
        "last_rotation": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(written)),
    }
    _print(target, status, [[k, v] for k, v in status.items()], ["FIELD", "VALUE"])


@token.command("force-refresh", help="Invalidate the token now and store a new one (a leaked token)")
@click.option(
    "--twice", is_flag=True, help="Two force refreshes 30 s apart: also kills the token issued between"
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation")
@click.pass_context
def token_force_refresh(ctx: click.Context, twice: bool, yes: bool) -> None:
    target = _target(ctx)
    if not yes:
        click.confirm(
            "Invalidate WeChat's access token now? Sends in flight may meet 40001 and heal; WeChat allows "
            "20 force refreshes a day",
            abort=True,
        )
    results = [_force_once(target)]
    if twice:
        if not target.as_json:
            click.echo("waiting 30 s for the second force refresh (WeChat's spacing)...", err=True)
        time.sleep(31)
        try:
            results.append(_force_once(target))
        except Failed:
            click.echo(f"the first force refresh did rotate the token: {json.dumps(results[0])}", err=True)
            raise
    rows = [[r["changed"], r["expires_in"], r["forced_today"], r["left_today"]] for r in results]
    _print(target, results if twice else results[0], rows, ["CHANGED", "EXPIRES IN", "TODAY", "LEFT TODAY"])


def _force_once(target: Target) -> dict[str, Any]:
    """One force refresh through the refresher function, the token's only writer."""
    result = target.invoke(target.refresher, {"force_refresh": True, "source": "wxsub-cli"})
    if not result.get("forced"):
        raise Failed(f"{result.get('status', '')} {result.get('error', '')}: {result.get('message', '')}")
    if not result.get("changed"):
        raise Failed(
            "WeChat answered with the token already stored: nothing was refreshed (a force refresh "
            "less than 30 s earlier, outside wxsub?); wait 30 s and run it again"
        )
    return dict(result)


def run() -> None:
    try:
        main(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
