"""Shared fixtures: the pinned opa, policy building, the shipped bundle."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from council.opa_tool import PROJECT_ROOT, find_opa, run_opa
from council.policy_build import build_bundle
from pdp.bundle import read_bundle

REGO_DIR = PROJECT_ROOT / "rego"
SHARED = PROJECT_ROOT.parent / "shared"
BUILD_CACHE = PROJECT_ROOT / ".cache" / "test-builds"


@pytest.fixture(scope="session")
def opa_binary() -> Path:
    """The pinned opa (the test command installs it first)."""
    return find_opa()


def compile_rego(
    source: str,
    entrypoints: list[str],
    *,
    files: dict[str, str] | None = None,
    capabilities: dict | None = None,
) -> bytes:
    """Compile Rego source text with ``opa build -t wasm``; return the bundle bytes.

    ``capabilities`` (OPA's capabilities document) lets a test declare extra builtins.
    Results are cached by content hash so repeated runs skip the compiler.
    """
    modules = {"policy.rego": source, **(files or {})}
    caps_text = json.dumps(capabilities, sort_keys=True) if capabilities else ""
    key = hashlib.sha256(
        repr((sorted(modules.items()), entrypoints, caps_text)).encode()
    ).hexdigest()
    cached = BUILD_CACHE / f"{key}.tar.gz"
    if cached.exists():
        return cached.read_bytes()
    work = BUILD_CACHE / f"{key}.src"
    work.mkdir(parents=True, exist_ok=True)
    for name, text in modules.items():
        (work / name).write_text(text)
    args = ["build", "-t", "wasm", "--wasm-include-print", "-o", str(cached)]
    if capabilities:
        caps_file = BUILD_CACHE / f"{key}.caps.json"
        caps_file.write_text(caps_text)
        args += ["--capabilities", str(caps_file)]
    for ep in entrypoints:
        args += ["-e", ep]
    args.append(str(work))
    res = run_opa(args)
    if res.returncode != 0:
        raise AssertionError(f"opa build failed: {res.stderr or res.stdout}")
    return cached.read_bytes()


@pytest.fixture(scope="session")
def compile_policy(opa_binary: Path) -> Callable[..., bytes]:
    """``compile_policy(source, ["pkg/rule"])`` → bundle bytes."""
    return compile_rego


@pytest.fixture(scope="session")
def council_bundle(opa_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped policies in ``rego/`` built into a bundle."""
    out = tmp_path_factory.mktemp("bundle") / "council.tar.gz"
    build_bundle(REGO_DIR, out, revision="test")
    return out


@pytest.fixture(scope="session")
def council_wasm(council_bundle: Path) -> bytes:
    """The Wasm module of the shipped bundle."""
    return read_bundle(council_bundle).wasm
