from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from wxsub import wiring
from wxsub.http.models import error_responses

router = Router()


def _text(body: str) -> Response[str]:
    return Response(status_code=200, content_type="text/plain", body=body)


@router.get(
    "/wechat/push",
    summary="WeChat's URL verification: answers the raw echostr when the signature checks out",
    tags=["wechat"],
    responses={200: {"description": "echostr"}, **error_responses(401)},
)
def verify() -> Response[str]:
    query = router.current_event.query_string_parameters or {}
    return _text(wiring.push_service().verify_url(query))


@router.post(
    "/wechat/push",
    summary="WeChat's message push (subscription events), plaintext, compatible or safe mode",
    tags=["wechat"],
    responses={200: {"description": "success"}, **error_responses(400, 401, 413, 503)},
)
def receive() -> Response[str]:
    event = router.current_event
    body = event.decoded_body or ""
    wiring.push_service().receive(
        event.query_string_parameters or {}, body.encode("utf-8"), event.headers.get("content-type")
    )
    return _text("success")
