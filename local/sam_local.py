"""SAM CLI's own ``sam local invoke`` and ``sam local start-api``, against the local AWS and the sandbox.

``python -m local.sam_local invoke FUNCTION EVENT`` (``make sam-invoke``) and ``python -m
local.sam_local api`` (``make sam-api``). Both:

1. need Docker: a running daemon is used as is; where only Debian's ``dockerd`` is installed and
   we are root, one is started for the run and stopped after it (never left running);
2. take the Lambda image (:mod:`local.sam_image`: pulled, or the stand-in built once);
3. ``sam build`` for this machine's architecture (the template's ``Architecture`` parameter);
4. start the local AWS and the WeChat sandbox listening on Docker's bridge gateway, so the
   functions inside their containers reach them, with the template's resources and SecureStrings;
5. write the ``--env-vars`` file that points each function at them (``AWS_ENDPOINT_URL`` and every
   variable the template declares, resolved as ``make local`` resolves them) and run SAM CLI with
   credentials of the local AWS only, never the host's.

``invoke`` first fills the event with what only a running stack has (a fresh ``wx.login`` code, a
session token, a granted openid, a push signature: :mod:`local.sam_events`), then checks what the
user expects of it (a session token, a message in the sandbox inbox and its receipt, a token in
SSM...) and exits non-zero when that is not what happened.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from local.policies import function_credentials
from local.sam_image import ImageUnavailable, LambdaImage, architecture, lambda_image
from local.stack import LocalStack
from local.stopping import StopRequest

ROOT = Path(__file__).resolve().parents[1]
NO_DOCKER = "`make local` runs the same API, functions, local AWS and sandbox without Docker"
Log = Callable[[str], None]


class SamUnavailable(RuntimeError):
    """SAM local cannot run here; the message says why and what to use instead."""


@dataclass(frozen=True)
class Invocation:
    function: str
    result: Any  # what the function returned (parsed JSON), None when it printed nothing
    stdout: str
    stderr: str
    seconds: float
    returncode: int


@contextlib.contextmanager
def docker_daemon(log: Log = print) -> Iterator[None]:
    """A running Docker daemon for the duration; one started here is stopped here."""
    if shutil.which("docker") is None:
        raise SamUnavailable(f"Docker is not installed (Debian: apt-get install docker.io); {NO_DOCKER}")
    if _docker_up():
        yield
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None or os.geteuid() != 0:
        raise SamUnavailable(f"Docker's daemon is not running (start dockerd as root); {NO_DOCKER}")
    log("starting dockerd for this run (stopped when it ends)...")
    with tempfile.NamedTemporaryFile(prefix="wxsub-dockerd-", suffix=".log", delete=False) as out:
        process = subprocess.Popen(
            [dockerd, "--iptables=false"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 60
        while not _docker_up():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SamUnavailable(f"dockerd did not start (its log: {out.name}); {NO_DOCKER}")
            time.sleep(0.5)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _docker_up() -> bool:
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def bridge_gateway() -> str:
    """The address containers on Docker's default bridge reach this machine at.

    Docker names it as the bridge's gateway, or (older daemons) only gives the subnet, whose
    first address the bridge interface holds.
    """
    done = subprocess.run(
        ["docker", "network", "inspect", "bridge"], capture_output=True, text=True, check=False
    )
    try:
        config = json.loads(done.stdout)[0]["IPAM"]["Config"][0]
    except (ValueError, LookupError, TypeError):
        raise SamUnavailable(
            "Docker has no default bridge network (dockerd started with --bridge=none?): "
            f"sam local needs it to publish the emulator's port; {NO_DOCKER}"
        ) from None
    if config.get("Gateway"):
        return str(config["Gateway"])
    return str(ipaddress.ip_network(config["Subnet"]).network_address + 1)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass
class SamLocal:
    """A built template, the image and a started local stack that SAM CLI's functions talk to."""

    sam: str
    python312: str
    stack: LocalStack
    image: LambdaImage
    build_dir: Path
    arch: str
    log: Log = print
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="wxsub-sam-")))

    @property
    def built_template(self) -> Path:
        return self.build_dir / "template.yaml"

    def parameter_overrides(self) -> list[str]:
        values = {"Architecture": self.arch, "WeChatAppId": self.stack.appid}
        if self.stack.sandbox_url:
            values["WeChatApiBase"] = self.stack.sandbox_url
        for name in ("WeChatTimeoutSeconds", "SettleWindowSeconds"):
            if name in self.stack.description.parameters:
                values[name] = str(self.stack.description.parameters[name])
        return [f"{key}={value}" for key, value in values.items()]

    def env_vars(self) -> Path:
        """The ``--env-vars`` file: each function's declared variables with their local values."""
        variables: dict[str, dict[str, str]] = {}
        for lid, fn in self.stack.description.functions.items():
            declared = dict(fn.environment)
            declared["AWS_ENDPOINT_URL"] = self.stack.aws_endpoint
            variables[lid] = declared
        path = self.work / "env-vars.json"
        path.write_text(json.dumps(variables, indent=2))
        return path

    def credentials(self, function: str | None) -> tuple[str, str]:
        """What SAM CLI hands the function: its own key in the local AWS (checked against its
        Policies); start-api runs every function from one process, so they share the stack's key."""
        if function is None:
            return self.stack.credentials
        return function_credentials(function)

    def sam_environment(self, function: str | None) -> dict[str, str]:
        """SAM CLI's own environment: the local AWS's credentials, never the host's profile or keys."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        key, secret = self.credentials(function)
        env.update(
            {
                "AWS_ACCESS_KEY_ID": key,
                "AWS_SECRET_ACCESS_KEY": secret,
                "AWS_REGION": self.stack.region,
                "AWS_DEFAULT_REGION": self.stack.region,
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "SAM_CLI_TELEMETRY": "0",
                "PATH": os.pathsep.join((str(Path(self.python312).parent), env.get("PATH", os.defpath))),
            }
        )
        return env

    def _common(self) -> list[str]:
        return [
            "--template",
            str(self.built_template),
            "--env-vars",
            str(self.env_vars()),
            "--parameter-overrides",
            " ".join(self.parameter_overrides()),
            "--invoke-image",
            self.image.name,
            "--skip-pull-image",
        ]

    def invoke(self, function: str, event: Mapping[str, Any], *, timeout: float = 300) -> Invocation:
        """``sam local invoke FUNCTION --event FILE``: what the function returned and printed."""
        event_file = self.work / f"{function}-event.json"
        event_file.write_text(json.dumps(event, ensure_ascii=False))
        args = [self.sam, "local", "invoke", function, "--event", str(event_file), *self._common()]
        started = time.perf_counter()
        done = subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.sam_environment(function),
            cwd=ROOT,
            check=False,
        )
        seconds = time.perf_counter() - started
        return Invocation(
            function, _last_json(done.stdout), done.stdout, done.stderr, seconds, done.returncode
        )

    @contextlib.contextmanager
    def start_api(self, port: int, *, ready_timeout: float = 120) -> Iterator[str]:
        """``sam local start-api`` on 127.0.0.1:``port`` until the block ends; yields its URL.

        Containers stay warm between requests. The sandbox pushes WeChat's events to it meanwhile
        (back to the stack's own API after)."""
        with self._serve("start-api", port, ready_timeout) as url:
            self._push_to(f"{url}/wechat/push")
            try:
                yield url
            finally:
                self._push_to(f"{self.stack.api_url}/wechat/push")

    @contextlib.contextmanager
    def start_lambda(
        self, port: int, *, ready_timeout: float = 120
    ) -> Iterator[Callable[[str, Any], Invocation]]:
        """``sam local start-lambda`` (the Lambda Invoke API, containers kept warm) until the block
        ends; yields ``invoke(function, event)``."""
        with self._serve("start-lambda", port, ready_timeout) as url:
            import boto3
            from botocore.config import Config

            key, secret = self.stack.credentials
            client = boto3.client(
                "lambda",
                endpoint_url=url,
                region_name=self.stack.region,
                aws_access_key_id=key,
                aws_secret_access_key=secret,
                config=Config(read_timeout=300, retries={"max_attempts": 0}),
            )

            def invoke(function: str, event: Any) -> Invocation:
                started = time.perf_counter()
                answer = client.invoke(
                    FunctionName=function, Payload=json.dumps(event, ensure_ascii=False).encode()
                )
                payload = answer["Payload"].read().decode()
                seconds = time.perf_counter() - started
                failed = 1 if answer.get("FunctionError") else 0
                return Invocation(function, _last_json(payload), payload, "", seconds, failed)

            yield invoke

    @contextlib.contextmanager
    def _serve(self, command: str, port: int, ready_timeout: float) -> Iterator[str]:
        log_path = self.work / f"{command}.log"
        args = [
            self.sam,
            "local",
            command,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--warm-containers",
            "LAZY",
            *self._common(),
        ]
        with open(log_path, "w") as out:
            process = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.sam_environment(None),
                cwd=ROOT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + ready_timeout
            while not _listening(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SamUnavailable(f"sam local {command} did not start:\n{_tail(log_path)}")
                time.sleep(0.3)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()  # SAM stops its warm containers on SIGTERM
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _push_to(self, push_url: str) -> None:
        if self.stack.sandbox_url:
            httpx.post(f"{self.stack.sandbox_url}/sandbox/config", json={"push_url": push_url}, timeout=10)

    def served_log(self, command: str = "start-api") -> str:
        path = self.work / f"{command}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def _last_json(stdout: str) -> Any:
    for line in reversed(stdout.strip().splitlines()):
        with contextlib.suppress(ValueError):
            return json.loads(line)
    return None


def sam_build(sam: str, python312: str, arch: str, build_dir: Path, *, log: Log = print) -> float:
    """``sam build`` of template.yaml for ``arch`` into ``build_dir`` (dependencies cached); seconds."""
    started = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        SAM_CLI_TELEMETRY="0", PATH=os.pathsep.join((str(Path(python312).parent), env.get("PATH", "")))
    )
    done = subprocess.run(
        [
            sam,
            "build",
            "--template",
            str(ROOT / "template.yaml"),
            "--build-dir",
            str(build_dir),
            "--cached",
            "--cache-dir",
            str(build_dir.parent / "cache-local"),
            "--parameter-overrides",
            f"Architecture={arch}",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise SamUnavailable(f"sam build failed:\n{(done.stdout + done.stderr)[-3000:]}")
    seconds = time.perf_counter() - started
    log(f"sam build ({arch}) in {seconds:.1f} s")
    return seconds


def _leftover_containers(image: str) -> list[str]:
    done = subprocess.run(["docker", "ps", "-aq"], capture_output=True, text=True, check=False)
    ids = done.stdout.split()
    if not ids:
        return []
    inspected = subprocess.run(
        ["docker", "inspect", "--format", "{{.Id}} {{.Config.Image}}", *ids],
        capture_output=True,
        text=True,
        check=False,
    )
    return [
        line.split()[0]
        for line in inspected.stdout.splitlines()
        if len(line.split()) == 2 and line.split()[1].startswith(image)
    ]


@contextlib.contextmanager
def session(
    sam: str,
    python312: str,
    *,
    parameters: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    background: bool = False,
    log: Log = print,
) -> Iterator[SamLocal]:
    """Docker, the image, the build and the local stack, all stopped and cleaned up at the end.

    With ``background`` the stack also runs what SAM CLI does not: the schedules (token refresh,
    template sync, the settle sweep) and the queue and stream consumers, in its own workers.
    """
    with docker_daemon(log):
        gateway = bridge_gateway()
        try:
            image = lambda_image(python312, log=log)
        except ImageUnavailable as exc:
            raise SamUnavailable(f"{exc}; {NO_DOCKER}") from exc
        log(image.note)
        arch = architecture()
        build_dir = ROOT / ".aws-sam" / f"build-local-{arch}"
        sam_build(sam, python312, arch, build_dir, log=log)
        stack_env = {
            k: v for k, v in (os.environ if env is None else env).items() if not k.startswith("WECHAT_")
        }
        stack = LocalStack(
            ROOT / "template.yaml",
            env=stack_env,
            host=gateway,
            schedules=background,
            pollers=background,
            parameters=parameters,
        )
        existing = set(_leftover_containers(image.name))
        runner: SamLocal | None = None
        try:
            with stack:
                runner = SamLocal(sam, python312, stack, image, build_dir, arch, log=log)
                yield runner
        finally:
            for container in set(_leftover_containers(image.name)) - existing:
                subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
            if runner is not None:
                shutil.rmtree(runner.work, ignore_errors=True)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local.sam_local", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sam", default=str(ROOT / ".venv-sam" / "bin" / "sam"), help="the sam executable")
    parser.add_argument("--python312", default=shutil.which("python3.12") or sys.executable)
    commands = parser.add_subparsers(dest="command", required=True)
    invoke = commands.add_parser("invoke", help="sam local invoke FUNCTION with EVENT, prepared and checked")
    invoke.add_argument("function", help="the function's logical id, e.g. LoginFunction")
    invoke.add_argument("event", nargs="?", help="the event file (default: events/<the function's>.json)")
    api = commands.add_parser("api", help="sam local start-api in front of the local AWS and sandbox")
    api.add_argument("--port", type=int, default=int(os.environ.get("SAM_PORT") or 3001))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from local import sam_events

    args = _arguments(argv)
    started = time.perf_counter()
    try:
        if args.command == "invoke":
            event_path = Path(args.event) if args.event else sam_events.default_event(args.function)
            if not event_path.is_file():
                print(f"sam-invoke: no event file {event_path}", file=sys.stderr)
                return 2
            with session(args.sam, args.python312) as runner:
                if args.function not in runner.stack.description.functions:
                    known = ", ".join(runner.stack.description.functions)
                    print(
                        f"sam-invoke: no function {args.function} in template.yaml ({known})", file=sys.stderr
                    )
                    return 2
                outcome = sam_events.run(runner, args.function, json.loads(event_path.read_text()))
                print(outcome.report())
                ok = outcome.ok
        else:
            port = args.port
            with session(args.sam, args.python312, background=True) as runner, runner.start_api(port) as url:
                print(sam_events.api_banner(runner, url), flush=True)
                stop = StopRequest()
                signal.signal(signal.SIGTERM, stop)
                signal.signal(signal.SIGINT, stop)
                stop.wait()
                ok = True
    except SamUnavailable as exc:
        print(f"sam local: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(f"({time.perf_counter() - started:.1f} s in all)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
