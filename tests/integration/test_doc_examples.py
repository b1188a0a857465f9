"""The README's and the docs' examples run as written, against a stack like ``make local``'s.

Each ``sh`` block marked ``<!-- example: NAME -->`` runs with bash (``set -euo pipefail``), in
document order, as if pasted into one terminal after ``make local``'s ``export`` line: the
environment holds ``WXSUB_API_URL`` and ``WXSUB_SANDBOX_URL`` of a stack this module starts on free
ports (the real template, the local default credentials ``testing``/``testing``, and the push Token
the README tells the reader to start with), and ``PATH`` with curl and python3. Each marked
``python`` block runs as a script, from a directory outside the repository, with the repository's
venv; ``PYTHONPATH`` names the repository only for the blocks that import its ``local`` package, as
docs/local.md says to. The answers that matter are asserted (:data:`EXPECTED`), not only exit codes.

Blocks marked ``not run`` (deploying to AWS, serving in the foreground) are not tests; each must
give its reason in its marker. The SSM commands of the deploy
steps run against an empty local AWS (moto) through the AWS CLI, as they would against an account.
``make demo`` runs too, and the commands it prints are run in turn.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from doc_examples import DOCS, ROOT, Block, Terminal, read_blocks, run_python, stray_markers, user_env

from local import running
from local.demo import Target, rerun_commands, run
from local.stack import DEFAULT_CREDENTIALS, LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ALL_BLOCKS = [block for doc in DOCS for block in read_blocks(doc)]
MARKED = [block for block in ALL_BLOCKS if block.runnable and block.name]
# the blocks that run; the others carry their reason in the marker (checked below)
RUN = [block for block in MARKED if block.not_run is None]

# What a block's output must show (regular expressions, multiline); the exit status is always checked.
_SENT = r'"status":\s*"sent"'
EXPECTED: dict[str, list[str]] = {
    "README.md:login": [r'"token":\s*"eyJ', r'"openid":\s*"o'],
    "README.md:grant": [r'"one_time":\s*1\b'],
    "README.md:send": [_SENT],
    "README.md:receipt": [r'"status":\s*"delivered"', r'"error_status":\s*"success"', r'"messages":\s*\[\{'],
    "README.md:idempotency": [
        rf"\A.*{_SENT}.*\n.*\"no_grant\".*\n.*\"no_grant\".*\n.*{_SENT}.*\n\Z",
    ],
    "README.md:templates": [r"^SbxOrderShipped1-one_time-tmpl-000000000001 one_time 订单发货通知 thing1"],
    "README.md:sandbox-pushes": [
        r"^subscribe_msg_popup_event \S+ 200 success$",
        r"^subscribe_msg_sent_event \S+ 200 success$",
        r'"ok":\s*true',
    ],
    "README.md:signed-push": [
        r"\Ahello\nsuccess\n",
        r'"template_id":\s*"SbxDeviceAlarm04-long_term-tmpl-00000000004"[^}]*"long_term":\s*true',
        r'"error":\s*"bad_signature"',
    ],
    "README.md:content-type": [r'"error":\s*"unsupported_media_type"', r'"error":\s*"invalid_code"'],
    "README.md:campaign": [r'"campaign_id":\s*"\w+"', r'"state":\s*"(expanding|running|done)"'],
    "README.md:python-signing": [
        r"^\{'templates': 4, 'removed': 0\}$",
        r"^SbxOrderShipped1-one_time-tmpl-000000000001 one_time$",
    ],
    "docs/local.md:curl-sigv4": [
        r'\A\{"templates":\s*4',
        r'^\{"message":\s*"Forbidden"\}$',
        r"The request signature we calculated does not match",
    ],
    "docs/local.md:python-local-sigv4": [r"^200 \{'templates': 4, 'removed': 0\}$"],
    "docs/local.md:python-botocore": [r"^200 \{'templates': 4, 'removed': 0\}$"],
    "docs/local.md:python-lambda-invoke": [r"^\{'changed': False, 'expires_in': \d+\}$"],
    "docs/local.md:aws-faults": [
        r'"operation":\s*"GetParameter"',
        r'"total":\s*\d+',
        r'^\{"faults":\s*\[\]\}$',
    ],
}
# The operator's SSM commands: run against an empty local AWS, then the parameters are checked.
AGAINST_AN_EMPTY_AWS = {
    "README.md:deploy-secrets",
    "README.zh-CN.md:deploy-secrets",
    "docs/deploy.md:secrets",
}
SECURE_STRINGS = ["app-secret", "push-aes-key", "push-token", "session-signing-key"]


def _push_token() -> str:
    """The Token the README tells the reader to start ``make local`` with, for the signed push."""
    found = re.search(r"WECHAT_PUSH_TOKEN=(\w+) make local", (ROOT / "README.md").read_text(encoding="utf-8"))
    assert found, "README.md no longer says which WECHAT_PUSH_TOKEN to start make local with"
    return found[1]


def _curl_problem() -> str | None:
    curl = shutil.which("curl")
    if curl is None:
        return "curl is not installed"
    version = subprocess.run([curl, "--version"], capture_output=True, text=True, check=False).stdout
    found = re.match(r"curl (\d+)\.(\d+)", version)
    if not found or (int(found[1]), int(found[2])) < (7, 75):
        return f"the examples need curl 7.75 or later (--aws-sigv4); this is {version.split(chr(10))[0]}"
    return None


@pytest.fixture(scope="module")
def docs_stack() -> Iterator[LocalStack]:
    """The product stack as ``make local`` starts it: its defaults, plus the README's push Token."""
    with LocalStack(ROOT / "template.yaml", env={"WECHAT_PUSH_TOKEN": _push_token()}) as started:
        assert started.credentials == DEFAULT_CREDENTIALS
        yield started


@pytest.fixture(scope="module")
def reader_env(docs_stack: LocalStack) -> dict[str, str]:
    problem = _curl_problem()
    if problem:
        pytest.fail(problem)
    return user_env(WXSUB_API_URL=docs_stack.api_url, WXSUB_SANDBOX_URL=docs_stack.sandbox_url or "")


@pytest.fixture(scope="module")
def terminals(tmp_path_factory: pytest.TempPathFactory, reader_env: dict[str, str]) -> dict[str, Terminal]:
    return {doc: Terminal(tmp_path_factory.mktemp(doc.replace("/", "-")), reader_env) for doc in DOCS}


@pytest.fixture(scope="module")
def empty_aws() -> Iterator[str]:
    """A bare moto server: an AWS account with nothing in it yet."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_every_shell_and_python_block_is_run_or_says_why_not() -> None:
    unmarked = [f"{b.doc}:{b.line}" for b in ALL_BLOCKS if b.runnable and not b.name]
    malformed = [f"{b.doc}:{b.line} {b.marker}" for b in ALL_BLOCKS if b.marker and not b.name]
    not_runnable = [f"{b.doc}:{b.line} ({b.language})" for b in ALL_BLOCKS if b.name and not b.runnable]
    without_reason = [b.id for b in MARKED if b.not_run is not None and not b.not_run.strip()]
    ids = [b.id for b in MARKED]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    stray = [f"{doc}:{line}" for doc in DOCS for line in stray_markers(doc)]

    assert unmarked == [], (
        "sh/python blocks without <!-- example: NAME --> or <!-- example: NAME, not run: WHY -->"
    )
    assert malformed == [] and not_runnable == [] and without_reason == [] and twice == [] and stray == []


def test_every_expectation_names_a_block_that_runs() -> None:
    running_ids = {b.id for b in MARKED if b.not_run is None}

    assert set(EXPECTED) - running_ids == set()
    assert AGAINST_AN_EMPTY_AWS - running_ids == set()


@pytest.mark.parametrize("block", RUN, ids=[b.id for b in RUN])
def test_doc_example(
    block: Block,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    if block.id in AGAINST_AN_EMPTY_AWS:
        _run_against_an_empty_aws(block, request.getfixturevalue("empty_aws"), tmp_path)
        return
    stack: LocalStack = request.getfixturevalue("docs_stack")
    env: dict[str, str] = request.getfixturevalue("reader_env")
    if block.language == "python":
        if "local" in re.findall(r"^\s*(?:from|import) (\w+)", block.code, re.MULTILINE):
            env = env | {"PYTHONPATH": str(ROOT)}
        ran = run_python(block.code, tmp_path / "elsewhere", env)
    else:
        terminal: Terminal = request.getfixturevalue("terminals")[block.doc]
        if terminal.failed:
            pytest.fail(f"{terminal.failed} failed, and this block builds on it")
        ran = terminal.run(block.code, extra_env=_extra_env(block, stack))
        if ran.returncode != 0:
            terminal.failed = block.id
    assert ran.returncode == 0, str(ran)
    missing = [p for p in EXPECTED.get(block.id, []) if not re.search(p, ran.stdout, re.MULTILINE)]
    assert missing == [], f"{block.id}: the output lacks {missing}\n{ran}"


def _extra_env(block: Block, stack: LocalStack) -> dict[str, str]:
    """Values the docs tell the reader to copy from ``make local``'s output before the block."""
    if block.id == "docs/local.md:aws-faults":
        return {"AWS": stack.aws_endpoint}
    return {}


def _run_against_an_empty_aws(block: Block, endpoint: str, tmp_path: Path) -> None:
    aws_env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_PAGER": "",
    }
    env = user_env(**aws_env)
    if shutil.which("aws", path=env["PATH"]) is None:
        pytest.fail("the AWS CLI is not installed (the deploy steps use it): pip install awscli")
    probe = subprocess.run(
        ["aws", "ssm", "describe-parameters"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if probe.returncode != 0:
        pytest.fail(f"this AWS CLI does not reach a local endpoint (AWS_ENDPOINT_URL): {probe.stderr[:200]}")
    _reset(endpoint)

    ran = Terminal(tmp_path, env).run(block.code)

    assert ran.returncode == 0, str(ran)
    ssm = boto3.client("ssm", endpoint_url=endpoint, region_name="us-east-1", **_keys())
    stored = ssm.get_parameters_by_path(Path="/wxsub/dev", WithDecryption=True)["Parameters"]
    assert sorted(p["Name"].rsplit("/", 1)[1] for p in stored) == SECURE_STRINGS
    assert {p["Type"] for p in stored} == {"SecureString"}
    key = next(p["Value"] for p in stored if p["Name"].endswith("session-signing-key"))
    assert re.fullmatch(r"[0-9a-f]{64}", key)


def _keys() -> dict[str, Any]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def _reset(endpoint: str) -> None:
    httpx.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()


def _demo_env(stack: LocalStack) -> dict[str, str]:
    return user_env(
        WXSUB_API_URL=stack.api_url,
        WXSUB_SANDBOX_URL=stack.sandbox_url or "",
        PYTHONPATH=os.pathsep.join(["layers/shared", "."]),
    )


def test_make_demo_prints_commands_that_run(
    docs_stack: LocalStack, reader_env: dict[str, str], tmp_path: Path
) -> None:
    # Given make demo driving the running stack (found through make local's record, as it is
    # when make local runs in another terminal)
    port = int(docs_stack.api_url.rsplit(":", 1)[1])
    running.announce(docs_stack, port)
    try:
        demo = subprocess.run(
            [sys.executable, "-m", "local.demo"],
            cwd=ROOT,
            env=_demo_env(docs_stack),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        running.record_path(port).unlink(missing_ok=True)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    printed = demo.stdout
    assert re.search(
        r"in SSM\s+/wxsub/dev/access-token version \d+, written \d+ s ago, expires in \d+ s", printed
    )
    assert re.search(r'receipt\s+\{"message_id": "\w+", "status": "delivered"', printed)

    # When the commands it printed are pasted into a terminal
    commands = printed.split("\nBy hand, ", 1)[1].splitlines()[1:]
    lines = [line.removeprefix("    ") for line in commands if line.startswith("    ")]
    ran = Terminal(tmp_path, reader_env).run("\n".join(lines))

    # Then this run's receipt is read, and the flow runs again to a delivered message
    assert ran.returncode == 0, str(ran)
    assert len(re.findall(r'"status":\s*"delivered"', ran.stdout)) == 2, str(ran)
    assert re.search(_SENT, ran.stdout), str(ran)


def test_the_demo_shows_a_token_rotation_without_the_token(
    docs_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a stack of the demo's own, whose refresher it may run and whose sandbox clock it may move
    target = Target.of(docs_stack)

    # When the demo runs
    sent = run(target)

    # Then it showed the SSM record before and after a rotation, and never the token
    printed = capsys.readouterr().out
    versions = re.findall(r"/wxsub/dev/access-token version (\d+)", printed)
    assert len(versions) == 2 and int(versions[1]) == int(versions[0]) + 1, printed
    token = _access_token(docs_stack)
    assert token not in printed
    assert "delivered" in printed
    assert any(sent.message_id in line for line in rerun_commands(target, sent, still_running=True))


def _access_token(stack: LocalStack) -> str:
    ssm = boto3.client("ssm", endpoint_url=stack.aws_endpoint, region_name=stack.region, **_keys())
    name = stack.description.parameters["AccessTokenParam"]
    return str(
        json.loads(ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])["access_token"]
    )
