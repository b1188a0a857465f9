"""The bench's own environment: ``bench/.venv-bench``, built from bench/requirements.txt.

wechatpy (and the ``requests`` it brings) and py-spy stay out of the dev venv and the product's
layer: the wechatpy loop runs in a subprocess of this venv and py-spy is its binary. The venv is
built on first use and rebuilt when the requirements change; when it cannot be built (no package
registry), the caller falls back (an httpx loop for wechatpy, no CPU split without py-spy) and
says why.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
VENV = HERE / ".venv-bench"
INSTALL_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class BenchTools:
    python: Path | None  # the venv's python, where wechatpy imports
    py_spy: Path | None
    why_not: str = ""  # why either is missing


def bench_tools() -> BenchTools:
    python, spy = VENV / "bin" / "python", VENV / "bin" / "py-spy"
    stamp = VENV / ".installed"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    try:
        if not (python.exists() and stamp.exists() and stamp.read_text() == wanted):
            _build(python)
            stamp.write_text(wanted)
        check = subprocess.run(
            [str(python), "-c", "import wechatpy"], check=False, capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        return BenchTools(None, None, f"{type(exc).__name__}: {exc}")
    why = "" if check.returncode == 0 else (check.stderr.strip().splitlines() or ["import failed"])[-1]
    return BenchTools(python if check.returncode == 0 else None, spy if spy.exists() else None, why)


def _build(python: Path) -> None:
    print(f"  building {VENV.relative_to(HERE.parent)} (wechatpy, py-spy) once ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True, timeout=120)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    out = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)],
        check=False,
        timeout=INSTALL_TIMEOUT_SECONDS,
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        errors = [line for line in out.stderr.splitlines() if "is ignored" not in line]
        raise RuntimeError(f"pip install -r {REQUIREMENTS.name} failed: {(errors or ['?'])[-1]}")
