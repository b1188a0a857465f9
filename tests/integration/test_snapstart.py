"""SnapStart: what ``wxsub.wiring`` registers to run after a restore, run as Lambda runs it.

A fresh interpreter gets SendMessageFunction's environment on the local stack, initialises as at
cold start (AWS clients, the WeChat client, the AppSecret read and cached), then runs every hook
registered with ``snapshot_restore_py`` (Lambda's Python runtime calls them after restoring a
snapshot). After them: new WeChat and AWS connections, the next secret read goes to SSM again
(counted by the local AWS), and ``random`` no longer continues the snapshot's sequence.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from local.stack import LocalStack
from local.workers import lambda_environment

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SCRIPT = textwrap.dedent(
    """
    import json, random, sys, urllib.request

    import snapshot_restore_py
    from wxsub import wiring

    def ssm_reads():
        counted = json.load(urllib.request.urlopen(sys.argv[1] + "/_local/requests"))
        return sum(r["count"] for r in counted["requests"] if r["service"] == "ssm")

    # init, as the handler module does at cold start
    wiring.send_service()
    idempotency = wiring.idempotency()._persistence.client
    idempotency.get_item(TableName=wiring.settings().need("idempotency_table"), Key={"id": {"S": "x"}})
    wiring.app_secret()
    http_before = wiring.transport()._client()
    ssm = wiring._ssm()
    wiring.app_secret()  # cached: no SSM request
    reads_before = ssm_reads()
    pools_before = len(ssm._endpoint.http_session._manager.pools)
    snapshot_state = random.getstate()
    random.setstate(snapshot_state)
    from_snapshot = [random.random() for _ in range(4)]
    random.setstate(snapshot_state)  # every environment restored from one snapshot starts here

    hooks = list(snapshot_restore_py._after_restore_registry)
    for func, args, kwargs in hooks:
        func(*args, **kwargs)

    after = [random.random() for _ in range(4)]
    pools_after = len(ssm._endpoint.http_session._manager.pools)
    idempotency_pools = len(idempotency._endpoint.http_session._manager.pools)
    wiring.app_secret()
    print(json.dumps({
        "hooks": [func.__qualname__ for func, _, _ in hooks],
        "new_wechat_client": wiring.transport()._client() is not http_before,
        "old_wechat_client_closed": http_before.is_closed,
        "aws_pools": [pools_before, pools_after],
        "idempotency_pools_after": idempotency_pools,
        "ssm_reads_after_restore": ssm_reads() - reads_before,
        "random_continues_snapshot": after == from_snapshot,
    }))
    """
)


def test_the_restore_hooks_reconnect_reread_secrets_and_reseed(stack: LocalStack) -> None:
    fn = stack.description.functions["SendMessageFunction"]
    env = lambda_environment(
        fn, region=stack.region, credentials=stack.credentials, aws_endpoint=stack.aws_endpoint
    )

    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, stack.aws_endpoint],
        env=env,
        cwd=fn.code_dir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["hooks"] == ["after_restore"]
    assert found["new_wechat_client"] and found["old_wechat_client_closed"]
    assert found["aws_pools"][0] >= 1 and found["aws_pools"][1] == 0
    assert found["idempotency_pools_after"] == 0  # the idempotency layer's client is reset too
    assert found["ssm_reads_after_restore"] == 1
    assert found["random_continues_snapshot"] is False
