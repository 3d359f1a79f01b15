"""Building Rego into an OPA bundle with a Wasm module, through the pinned ``opa``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from council.opa_tool import OpaToolError, run_opa

__all__ = ["BuildResult", "annotated_entrypoints", "build_bundle"]

TEST_FILE_GLOB = "*_test.rego"


@dataclass(frozen=True)
class BuildResult:
    """The bundle written and the entrypoints compiled into it."""

    path: Path
    entrypoints: tuple[str, ...]


def _ref_to_entrypoint(path: list[dict[str, object]]) -> str:
    parts = [str(t["value"]) for t in path[1:]]  # drop the leading `data` var
    return "/".join(parts)


def annotated_entrypoints(source_dir: Path) -> list[str]:
    """Rules and packages marked ``# METADATA`` ``entrypoint: true`` under ``source_dir``."""
    res = run_opa(["inspect", "-a", "--format", "json", str(source_dir)])
    if res.returncode != 0:
        raise OpaToolError(f"opa inspect failed:\n{res.stderr or res.stdout}")
    found: list[str] = []
    for entry in json.loads(res.stdout).get("annotations") or []:
        if entry.get("annotations", {}).get("entrypoint"):
            name = _ref_to_entrypoint(entry["path"])
            if name not in found:
                found.append(name)
    return found


def build_bundle(
    source_dir: Path,
    output: Path,
    *,
    entrypoints: list[str] | None = None,
    revision: str | None = None,
    optimize: int = 0,
    include_print: bool = False,
) -> BuildResult:
    """Compile ``source_dir`` to ``output`` (a ``.tar.gz`` bundle with ``policy.wasm``).

    Entrypoints come from ``entrypoints`` or, when none are given, from the entrypoint
    annotations in the sources. Test files (``*_test.rego``) stay out of the bundle.
    ``include_print`` keeps ``print()`` calls (OPA drops them from Wasm by default).
    """
    eps = [e.replace(".", "/") if "/" not in e else e for e in (entrypoints or [])]
    eps = [e[5:] if e.startswith("data/") else e for e in eps]
    if not eps:
        eps = annotated_entrypoints(source_dir)
    if not eps:
        raise OpaToolError(
            f"no entrypoints: pass -e or annotate rules in {source_dir} with "
            "`# METADATA` / `# entrypoint: true`"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    args = ["build", "-t", "wasm", "--ignore", TEST_FILE_GLOB, "-o", str(output)]
    if optimize:
        args.append(f"-O={optimize}")
    if include_print:
        args.append("--wasm-include-print")
    if revision is not None:
        args += ["--revision", revision]
    for ep in eps:
        args += ["-e", ep]
    args.append(str(source_dir))
    res = run_opa(args)
    if res.returncode != 0:
        raise OpaToolError(f"opa build failed:\n{res.stderr or res.stdout}")
    return BuildResult(output, tuple(eps))
