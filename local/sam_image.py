"""The Lambda base image ``sam local`` runs the functions in.

SAM CLI wants ``public.ecr.aws/lambda/python:3.12``. Where that can be pulled it is used as is.
Where it cannot (no registry reachable), a stand-in is built once and kept by Docker: a Debian
bookworm root from Debian's packages (``debootstrap``), this machine's own CPython 3.12 copied to
``/var/lang`` as in Lambda's image, ``awslambdaric`` and the runtime's ``boto3`` from PyPI, and a
``/var/runtime/bootstrap`` that starts the runtime interface client on ``$_HANDLER``. SAM adds its
own Runtime Interface Emulator on top (``--invoke-image``), as it does to the public image.

The stand-in is labelled with a digest of its recipe, so a changed recipe builds a new one.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PUBLIC_IMAGE = "public.ecr.aws/lambda/python:3.12"
STAND_IN = "wxsub-lambda-python"
# what the stand-in root gets from Debian: the shared libraries CPython's modules link against
DEBIAN_PACKAGES = (
    "libssl3",
    "libffi8",
    "libsqlite3-0",
    "libbz2-1.0",
    "liblzma5",
    "zlib1g",
    "libexpat1",
    "libuuid1",
    "libncursesw6",
    "libreadline8",
    "libgdbm6",
    "ca-certificates",
)
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# what Lambda's Python image has beside the standard library (boto3 at the version we test with)
RUNTIME_PACKAGES = ("awslambdaric==4.2.2", "boto3==1.44.5")
BOOTSTRAP = """#!/bin/sh
# Lambda's order: the function's code, then its layers, then the runtime's own packages
export PYTHONPATH="${LAMBDA_TASK_ROOT:-/var/task}:/opt/python/lib/python3.12/site-packages:/opt/python"
cd "${LAMBDA_TASK_ROOT:-/var/task}"
exec /var/lang/bin/python3.12 -m awslambdaric "$_HANDLER"
"""
IMAGE_ENV = (
    "PATH=/var/lang/bin:/usr/local/bin:/usr/bin:/bin",
    "LANG=C.UTF-8",
    "TZ=:UTC",
    "LAMBDA_TASK_ROOT=/var/task",
    "LAMBDA_RUNTIME_DIR=/var/runtime",
)
# parts of a CPython build Lambda's image leaves out, or that only the build's own tools use
SKIPPED = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "__pycache__", "site-packages"}


class ImageUnavailable(RuntimeError):
    """No Lambda image could be pulled or built; the message says what is missing."""


@dataclass(frozen=True)
class LambdaImage:
    name: str
    stand_in: bool  # built here rather than pulled
    note: str  # one line for the user: which image and why


def architecture() -> str:
    """The Lambda architecture matching this machine (what the local image and functions use)."""
    return "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"


def lambda_image(python312: str, *, log: Callable[[str], None] = print) -> LambdaImage:
    """The public image when it is present or can be pulled, else the stand-in (built if needed)."""
    if _docker("image", "inspect", PUBLIC_IMAGE).returncode == 0 or _pull(PUBLIC_IMAGE):
        return LambdaImage(PUBLIC_IMAGE, False, f"Lambda image: {PUBLIC_IMAGE}")
    tag = f"{STAND_IN}:3.12-{architecture()}-{recipe_digest(python312)}"
    note = (
        f"Lambda image: {tag}, built here from Debian's packages and this machine's Python 3.12 "
        f"({PUBLIC_IMAGE} cannot be pulled)"
    )
    if _docker("image", "inspect", tag).returncode == 0:
        return LambdaImage(tag, True, note)
    build_stand_in(tag, python312, log=log)
    return LambdaImage(tag, True, note)


def recipe_digest(python312: str) -> str:
    """Changes when anything the stand-in is made from changes."""
    recipe = "\n".join(
        (
            *DEBIAN_PACKAGES,
            *RUNTIME_PACKAGES,
            BOOTSTRAP,
            *IMAGE_ENV,
            *sorted(SKIPPED),
            _python_version(python312),
        )
    )
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def build_stand_in(tag: str, python312: str, *, log: Callable[[str], None] = print) -> None:
    """Build the stand-in image ``tag`` (about a minute: debootstrap is most of it)."""
    if os.geteuid() != 0:
        raise ImageUnavailable("building the Lambda image needs root (debootstrap and chroot)")
    if shutil.which("debootstrap") is None:
        raise ImageUnavailable("building the Lambda image needs debootstrap: apt-get install debootstrap")
    prefix = Path(python312).resolve().parents[1]
    if not (prefix / "lib" / "python3.12" / "os.py").is_file():
        raise ImageUnavailable(f"{python312} is not a CPython 3.12 installation that can be copied")
    with tempfile.TemporaryDirectory(prefix="wxsub-lambda-root-", dir="/var/tmp") as work:
        root = Path(work) / "root"
        log(f"building {tag}: Debian root (debootstrap)...")
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(DEBIAN_PACKAGES)}",
                "bookworm",
                str(root),
                DEBIAN_MIRROR,
            ]
        )
        log(f"building {tag}: Python {_python_version(python312)} into /var/lang, runtime packages...")
        lang = root / "var" / "lang"
        shutil.copytree(prefix, lang, symlinks=True, ignore=lambda _dir, names: SKIPPED & set(names))
        site = lang / "lib" / "python3.12" / "site-packages"
        site.mkdir(exist_ok=True)
        _run(
            [
                python312,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-compile",
                "--disable-pip-version-check",
                f"--target={site}",
                "--only-binary=:all:",
                f"--platform=manylinux2014_{'aarch64' if architecture() == 'arm64' else 'x86_64'}",
                "--python-version=3.12",
                "--implementation=cp",
                *RUNTIME_PACKAGES,
            ]
        )
        (root / "etc" / "ld.so.conf.d" / "var-lang.conf").write_text("/var/lang/lib\n")
        _run(["chroot", str(root), "/sbin/ldconfig"])
        runtime = root / "var" / "runtime"
        runtime.mkdir(parents=True, exist_ok=True)
        (runtime / "bootstrap").write_text(BOOTSTRAP)
        (runtime / "bootstrap").chmod(0o755)
        (root / "var" / "task").mkdir(parents=True, exist_ok=True)
        (root / "opt").mkdir(exist_ok=True)
        _run(
            [
                "chroot",
                str(root),
                "/var/lang/bin/python3.12",
                "-c",
                "import awslambdaric, boto3, ssl, sqlite3",
            ]
        )
        log(f"building {tag}: docker import...")
        changes = [f"ENV {item}" for item in IMAGE_ENV] + ["WORKDIR /var/task"]
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        args = ["docker", "import", *(a for c in changes for a in ("--change", c)), "-", tag]
        imported = subprocess.run(args, stdin=tar.stdout, capture_output=True, text=True, check=False)
        assert tar.stdout is not None
        tar.stdout.close()
        if tar.wait() != 0 or imported.returncode != 0:
            raise ImageUnavailable(f"docker import failed: {imported.stderr.strip()}")


def _python_version(python312: str) -> str:
    out = subprocess.run(
        [python312, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "unknown"


def _pull(image: str) -> bool:
    try:
        return _docker("pull", "-q", image, timeout=120).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)


def _run(args: list[str]) -> None:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise ImageUnavailable(f"{' '.join(args[:2])} failed ({done.returncode}): {tail}")


if __name__ == "__main__":
    image = lambda_image(sys.argv[1] if len(sys.argv) > 1 else sys.executable)
    print(image.note)
