"""The local HTTP API: routes from the template, payload format 2.0 both ways, per-function processes."""

from __future__ import annotations

import os
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from local.gateway import PortInUse
from local.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
FIXTURE_TEMPLATE = Path(__file__).resolve().parent / "fixtures" / "template.yaml"


def test_a_route_from_the_template_gets_a_version_2_event(fixture_api: httpx.Client) -> None:
    # Given the template's GET /echo route
    # When it is called with a repeated query parameter and cookies
    response = fixture_api.get("/echo?a=1&a=2&empty=", headers={"cookie": "x=1; y=2", "X-Custom": "v"})

    # Then the function got the event API Gateway would hand it
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["apigw-requestid"]
    event = response.json()["event"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /echo"
    assert event["rawPath"] == "/echo"
    assert event["rawQueryString"] == "a=1&a=2&empty="
    assert event["queryStringParameters"] == {"a": "1,2", "empty": ""}
    assert event["cookies"] == ["x=1", "y=2"]
    assert "cookie" not in event["headers"]
    assert event["headers"]["x-custom"] == "v"
    assert event["headers"]["x-forwarded-proto"] == "http"
    assert event["isBase64Encoded"] is False
    assert "body" not in event
    context = event["requestContext"]
    assert context["http"]["method"] == "GET"
    assert context["http"]["sourceIp"] == "127.0.0.1"
    assert context["stage"] == "$default"
    assert context["requestId"] == response.headers["apigw-requestid"]
    assert "authorizer" not in context


def test_path_parameters_greedy_paths_and_any(fixture_api: httpx.Client) -> None:
    item = fixture_api.get("/items/a%20b").json()["event"]
    assert item["routeKey"] == "GET /items/{id}"
    assert item["pathParameters"] == {"id": "a b"}

    files = fixture_api.delete("/files/docs/readme.txt").json()["event"]
    assert files["routeKey"] == "ANY /files/{path+}"
    assert files["pathParameters"] == {"path": "docs/readme.txt"}


def test_bodies_text_as_is_binary_as_base64(fixture_api: httpx.Client) -> None:
    text = fixture_api.post("/echo", json={"k": "值"}).json()["event"]
    assert text["body"] == '{"k":"值"}'
    assert text["isBase64Encoded"] is False

    binary = fixture_api.post(
        "/echo", content=b"\xff\x00raw", headers={"content-type": "application/octet-stream"}
    ).json()["event"]
    assert binary["isBase64Encoded"] is True
    assert binary["body"] == "/wByYXc="


def test_unknown_routes_and_methods_are_api_gateway_404s(fixture_api: httpx.Client) -> None:
    for method, path in [("GET", "/nowhere"), ("PUT", "/echo"), ("GET", "/items")]:
        response = fixture_api.request(method, path)
        assert response.status_code == 404
        assert response.json() == {"message": "Not Found"}


@pytest.mark.parametrize(
    ("shape", "status", "content_type", "body"),
    [
        ("plain", 200, "application/json", b'{"hello": "world"}'),
        ("string", 200, "application/json", b'"just a string"'),
        ("binary", 201, "application/octet-stream", b"\x00\x01binary"),
        ("malformed", 500, "application/json", b'{"message": "Internal Server Error"}'),
        ("raise", 500, "application/json", b'{"message": "Internal Server Error"}'),
    ],
)
def test_responses_are_mapped_as_api_gateway_maps_them(
    fixture_api: httpx.Client, shape: str, status: int, content_type: str, body: bytes
) -> None:
    response = fixture_api.get(f"/echo?shape={shape}")

    assert response.status_code == status
    assert response.headers["content-type"] == content_type
    assert response.content == body


def test_cookies_and_headers_of_a_response(fixture_api: httpx.Client) -> None:
    response = fixture_api.get("/echo?shape=binary")

    assert response.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2"]
    assert response.headers["x-extra"] == "1"


def test_a_function_error_is_logged_like_lambda(fixture_stack: LocalStack, fixture_api: httpx.Client) -> None:
    fixture_api.get("/echo?shape=raise")

    assert "[EchoFunction] [ERROR] ValueError: asked to fail" in fixture_stack.logs()


def test_each_function_sees_only_its_own_environment(
    fixture_stack: LocalStack, fixture_api: httpx.Client, fixture_signed
) -> None:
    # Given two functions with different Environment blocks and the Globals they share
    echo = fixture_api.get("/echo").json()["environ"]
    secure = fixture_signed().post("/secure", json={}).json()["environ"]

    # Then each sees the Globals, its own variables resolved to local names, and what Lambda sets
    assert echo["GREETING"] == secure["GREETING"] == "hello"
    assert echo["EVENTS_TABLE"] == "wxsub-local-EventsTable"
    assert echo["MODE"] == "developer"
    assert echo["QUEUE_URL"] == f"{fixture_stack.aws_endpoint}/123456789012/wxsub-local-WorkQueue"
    assert echo["QUEUE_NAME"] == "wxsub-local-WorkQueue"
    assert echo["SUMMARY"] == "hello from us-east-1 via wxsub-local-EventsTable"
    assert echo["ECHO_ONLY"] == "yes" and "ECHO_ONLY" not in secure
    assert secure["SECRET_NAME"] == "/fixture/secret" and "SECRET_NAME" not in echo
    assert echo["AWS_ENDPOINT_URL"] == fixture_stack.aws_endpoint
    assert echo["AWS_LAMBDA_FUNCTION_NAME"] == "wxsub-local-EchoFunction"
    assert echo["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert echo["_HANDLER"] == "app.lambda_handler"
    assert echo["PYTHONPATH"].endswith("fixtures/layer")
    # and nothing of the test process's own environment
    assert "PYTEST_CURRENT_TEST" in os.environ
    assert "PYTEST_CURRENT_TEST" not in echo
    assert "HOME" not in echo


def test_the_lambda_context(fixture_api: httpx.Client) -> None:
    context = fixture_api.get("/echo").json()["context"]

    assert context["function_name"] == "wxsub-local-EchoFunction"
    assert context["memory_limit_in_mb"] == 256
    assert 0 < context["remaining_ms"] <= 5000
    assert context["invoked_function_arn"].endswith(":function:wxsub-local-EchoFunction")


def test_a_function_past_its_timeout_is_a_500_and_its_process_is_replaced(
    fixture_stack: LocalStack, fixture_api: httpx.Client
) -> None:
    response = fixture_api.get("/slow")

    assert response.status_code == 500
    assert response.json() == {"message": "Internal Server Error"}
    assert any("Task timed out after 1 seconds" in line for line in fixture_stack.logs())


def test_concurrent_requests_run_in_parallel_processes(fixture_api: httpx.Client) -> None:
    # When 20 requests arrive at once on one route
    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda _: fixture_api.get("/echo"), range(20)))

    # Then all succeed, served by at most the pool's processes (each one invocation at a time)
    assert [r.status_code for r in responses] == [200] * 20
    pids = {r.json()["pid"] for r in responses}
    assert 1 <= len(pids) <= 4


def test_parameter_overrides_and_conditions() -> None:
    with LocalStack(
        FIXTURE_TEMPLATE,
        env={},
        sandbox=False,
        schedules=False,
        pollers=False,
        parameters={"Stage": "prod", "Greeting": "hi"},
    ) as stack:
        environ = httpx.get(f"{stack.api_url}/echo").json()["environ"]

    assert environ["MODE"] == "formal"
    assert environ["GREETING"] == "hi"


def test_a_busy_port_is_reported_by_number() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        with pytest.raises(PortInUse, match=str(port)):
            LocalStack(FIXTURE_TEMPLATE, env={}, sandbox=False, port=port).start()
