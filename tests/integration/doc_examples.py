"""The shell and Python examples of the README and the docs, as blocks a test can run.

A block is marked by an HTML comment on the line before its fence, which a rendered page does not
show::

    <!-- example: send -->                                        run it
    <!-- example: deploy, not run: needs an AWS account -->       list it, with the reason, and skip it

(or on the line after its closing fence, where the line before must stay as it is: the README's
first lines.)
Every ``sh`` and ``python`` block of :data:`DOCS` must carry one, so a new example cannot go
untested by accident. :class:`Terminal` runs the shell blocks of one document as a reader pasting
them into one terminal would: what a block sets (variables, functions) is there for the next.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "docs/local.md", "README.zh-CN.md", "docs/deploy.md")
LANGUAGES = {"sh": "sh", "bash": "sh", "shell": "sh", "zsh": "sh", "python": "python", "py": "python"}
MARKER = re.compile(
    r"^\s*<!--\s*example:\s*(?P<name>[a-z0-9][a-z0-9-]*)\s*(?:,\s*not run:\s*(?P<reason>.*?))?\s*-->\s*$"
)
_ANY_MARKER = re.compile(r"^\s*<!--\s*example\b")
_OPEN = re.compile(r"^(?P<indent>\s*)```(?P<language>[\w+-]*)\s*$")
_CLOSE = re.compile(r"^\s*```\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, its code and its marker (if any)."""

    doc: str
    line: int
    language: str
    code: str
    name: str | None = None
    not_run: str | None = None
    marker: str | None = None
    marker_line: int | None = None

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.name or f'line {self.line}'}"

    @property
    def runnable(self) -> bool:
        """A shell or Python block, which must say whether it is run."""
        return self.language in LANGUAGES


def read_blocks(doc: str) -> list[Block]:
    """Every fenced block of ``doc`` (relative to the repository), with the marker just before it."""
    lines = (ROOT / doc).read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opened = _OPEN.match(lines[index])
        if not opened:
            index += 1
            continue
        start, indent = index, len(opened["indent"])
        index += 1
        body: list[str] = []
        while index < len(lines) and not _CLOSE.match(lines[index]):
            line = lines[index]
            body.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
            index += 1
        end = index
        index += 1
        blocks.append(_block(doc, lines, (start, end), opened["language"].lower(), "\n".join(body) + "\n"))
    return blocks


def _block(doc: str, lines: list[str], span: tuple[int, int], language: str, code: str) -> Block:
    start, end = span
    before = next((i for i in range(start - 1, -1, -1) if lines[i].strip()), None)
    after = next((i for i in range(end + 1, len(lines)) if lines[i].strip()), None)
    at = next((i for i in (before, after) if i is not None and _ANY_MARKER.match(lines[i])), None)
    marker = MARKER.match(lines[at]) if at is not None else None
    return Block(
        doc=doc,
        line=start + 1,
        language=language,
        code=code,
        name=marker["name"] if marker else None,
        not_run=marker["reason"] if marker else None,
        marker=lines[at].strip() if at is not None else None,
        marker_line=at + 1 if at is not None else None,
    )


def stray_markers(doc: str) -> list[int]:
    """Line numbers of example markers that no fenced block claims (see :func:`read_blocks`)."""
    lines = (ROOT / doc).read_text(encoding="utf-8").splitlines()
    claimed = {b.marker_line for b in read_blocks(doc)}
    return [n + 1 for n, line in enumerate(lines) if _ANY_MARKER.match(line) and n + 1 not in claimed]


# Runs the block, then writes what it defined (variables, functions) for the next block to source.
# Variables bash had before the state was sourced are its own or the environment's: not carried.
_SCRIPT = """\
set -euo pipefail
declare -A __wx_base=()
while read -r __wx_name; do __wx_base[$__wx_name]=1; done < <(compgen -v)
source '{state}'
{code}
{{
  for __wx_name in $(compgen -v); do
    [[ $__wx_name == __wx_* || $__wx_name == BASH* || $__wx_name == _ || -n ${{__wx_base[$__wx_name]+x}} ]] \\
      || declare -p "$__wx_name"
  done
  declare -f
}} > '{next_state}'
"""


class Terminal:
    """One bash session across the shell blocks of a document, as a reader pasting them in order."""

    def __init__(self, workdir: Path, env: dict[str, str], cwd: Path = ROOT) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self._state = workdir / "state.sh"
        self._next = workdir / "state.next.sh"
        self._state.write_text("", encoding="utf-8")
        self._env = env
        self._cwd = cwd
        self.failed: str | None = None

    def run(self, code: str, extra_env: dict[str, str] | None = None, timeout: float = 120) -> Ran:
        script = _SCRIPT.format(state=self._state, next_state=self._next, code=code)
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=self._cwd,
            env=self._env | (extra_env or {}),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode == 0:
            self._next.replace(self._state)
        return Ran(done.returncode, done.stdout, done.stderr)


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def run_python(code: str, workdir: Path, env: dict[str, str], timeout: float = 120) -> Ran:
    """A Python block saved as a script and run from ``workdir`` (outside the repository) with its venv."""
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / "example.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), str(script)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def user_env(**values: str) -> dict[str, str]:
    """A shell's environment as a reader would have it: PATH and HOME, no AWS or WeChat settings."""
    kept = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR") or k.startswith("PYENV_")}
    return kept | {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"} | values
