"""`make sam-api` as a user runs it: its export line, the README's own blocks, then Ctrl-C.

This module runs before the others (by name), while no other SAM process of the suite is serving,
so it can check that nothing is left running afterwards.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from local.sam_local import ROOT, SamLocal, _listening, free_port

# the README's walk-through, pasted into one terminal after `make sam-api`'s export line
README_FLOW = ("login", "grant", "send", "receipt", "idempotency", "templates")


def test_make_sam_api_serves_the_readmes_own_commands_and_stops_clean(sam: SamLocal, tmp_path: Path) -> None:
    """What `make sam-api` runs, as a user runs it: its printed export line, then the README's
    blocks as written, then Ctrl-C; no container, local AWS or sandbox is left behind."""
    docs = _doc_examples()
    blocks = {block.name: block for block in docs.read_blocks("README.md")}
    port = free_port()
    served = subprocess.Popen(
        [sys.executable, "-m", "local.sam_local", "--sam", sam.sam, "--python312", sam.python312, "api"],
        env={**os.environ, "SAM_PORT": str(port)},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert served.stdout is not None
        for line in served.stdout:
            lines.append(line)
            if line.startswith("export WXSUB_API_URL="):
                break
        exported = dict(item.split("=", 1) for item in lines[-1].split()[1:])
        assert exported["WXSUB_API_URL"] == f"http://127.0.0.1:{port}", "".join(lines)
        terminal = docs.Terminal(tmp_path, docs.user_env(**exported))
        outputs = {}
        for name in README_FLOW:
            ran = terminal.run(blocks[name].code, timeout=300)
            assert ran.returncode == 0, f"README.md:{name}\n{ran}"
            outputs[name] = ran.stdout
    finally:
        served.send_signal(signal.SIGINT)
        rest, _ = served.communicate(timeout=120)

    assert served.returncode == 0, "".join(lines) + rest
    assert re.search(r'"status":\s*"sent"', outputs["send"])
    assert '"delivered"' in outputs["receipt"]
    assert outputs["idempotency"].count("no_grant") == 2
    assert not _listening(port)
    leftovers = subprocess.run(["docker", "ps", "-aq"], capture_output=True, text=True, check=True).stdout
    assert leftovers.split() == []  # the suite's own start-api/start-lambda are stopped between uses too


def _doc_examples() -> Any:
    """tests/integration/doc_examples.py: reads the README's marked blocks and runs them as a reader."""
    path = Path(__file__).resolve().parents[1] / "integration" / "doc_examples.py"
    spec = importlib.util.spec_from_file_location("doc_examples", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
