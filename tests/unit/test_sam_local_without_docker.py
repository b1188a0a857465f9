"""``make sam-invoke`` / ``make sam-api`` on a machine without Docker: a clear stop naming ``make local``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from local import sam_events

ROOT = Path(__file__).resolve().parents[2]


def _sam_local(*args: str, path: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PATH"} | {
        "PATH": path,
        "PYTHONPATH": f"layers/shared{os.pathsep}.",
    }
    return subprocess.run(
        [sys.executable, "-m", "local.sam_local", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("command", [["invoke", "LoginFunction"], ["api"]])
def test_without_docker_the_targets_stop_and_name_make_local(tmp_path: Path, command: list[str]) -> None:
    done = _sam_local(*command, path=str(tmp_path))  # a PATH with no docker on it

    assert done.returncode == 1
    assert "Docker is not installed" in done.stderr
    assert "`make local`" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_event_file_that_does_not_exist_is_named(tmp_path: Path) -> None:
    done = _sam_local("invoke", "LoginFunction", "events/no-such-event.json", path=str(tmp_path))

    assert done.returncode == 2
    assert "no event file events/no-such-event.json" in done.stderr


def test_every_function_of_the_template_has_its_event_file() -> None:
    from local.template import load_yaml

    resources = load_yaml(ROOT / "template.yaml")["Resources"]
    functions = {name for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}

    assert set(sam_events.EVENT_FILES) == functions
    for function, name in sam_events.EVENT_FILES.items():
        assert (ROOT / "events" / name).is_file(), function
        assert sam_events.function_of(name) == function
