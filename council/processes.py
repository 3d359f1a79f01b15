"""Starting ``council`` servers as child processes and reading their start-up line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from council.opa_tool import PROJECT_ROOT

__all__ = ["spawn_council"]


def spawn_council(
    args: list[str], pattern: str, processes: list[subprocess.Popen[str]], log: Path
) -> re.Match[str]:
    """Start ``council ARGS`` and match ``pattern`` against the line it prints when ready.

    The process is appended to ``processes`` (the caller stops it). Its stderr goes to
    ``log``, not a pipe: a pipe nobody drains fills up and blocks a long-running server.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "council", *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=PROJECT_ROOT,
        )
    processes.append(proc)
    line = proc.stdout.readline() if proc.stdout else ""
    match = re.search(pattern, line)
    if not match:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"`council {' '.join(args[:2])}` did not start: {line!r}\n{tail}")
    return match
