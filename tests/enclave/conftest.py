"""Shared fixtures for the secure-compute tests: a real PDP serving the enclave policies, a
real swtpm platform, and small generated datasets.

The PDP serves a bundle built by the pinned ``opa`` from a copy of ``rego/council/enclave``
alone, so other policy work in ``rego/`` cannot break these tests, plus one test-only data
file: the appraisal policy ``sample-tests`` that admits the sample verifier's evidence, so
the pipeline can be driven to ``affirming`` without a TPM. Shipped policies never admit it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from pdp_harness import running_pdp

from agents.enclave import swtpm
from agents.enclave.platform import PlatformConfig, SoftwareTpmPlatform
from council.opa_tool import PROJECT_ROOT
from council.policy_build import build_bundle
from gateway.pdp_server import PDPServer, PDPServerConfig

SAMPLE_POLICY = {
    "description": "TESTS ONLY: admits the sample verifier",
    "allowed_tee_classes": ["sample"],
    "tolerated_warnings": [],
    "required_measurements": [],
    "allow_debug": False,
    "allow_test_evidence": True,
}

needs_tpm = pytest.mark.skipif(
    bool(swtpm.missing_tools()),
    reason=f"software TPM not installed ({', '.join(swtpm.missing_tools())}): "
    "apt-get install -y swtpm swtpm-tools tpm2-tools",
)
needs_bwrap = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="bubblewrap not installed: apt-get install -y bubblewrap"
)


@pytest.fixture(scope="session")
def enclave_bundle(opa_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The enclave policies (plus the test-only ``sample-tests`` policy) as a bundle."""
    root = tmp_path_factory.mktemp("enclave-rego")
    source = root / "rego" / "council" / "enclave"
    shutil.copytree(
        PROJECT_ROOT / "rego" / "council" / "enclave",
        source,
        ignore=shutil.ignore_patterns("*_test.rego"),
    )
    overlay = source / "appraisal_policies" / "sample-tests"
    overlay.mkdir(parents=True)
    (overlay / "data.json").write_text(json.dumps(SAMPLE_POLICY))
    return build_bundle(root / "rego", root / "enclave.tar.gz", revision="enclave-tests").path


@pytest.fixture(scope="session")
def pdp(enclave_bundle: Path) -> Iterator[PDPServer]:
    """A PDP server on 127.0.0.1 serving :func:`enclave_bundle`."""
    config = PDPServerConfig(bundle=str(enclave_bundle), allow_unsigned=True)
    with running_pdp(config) as (server, _loop):
        yield server


@pytest.fixture(scope="session")
def pdp_target(pdp: PDPServer) -> str:
    """``host:port`` of the PDP's gRPC listener."""
    return f"127.0.0.1:{pdp.grpc_port}"


@pytest.fixture(scope="session")
def platform_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state directory provisioned once per session (swtpm_setup takes seconds)."""
    if swtpm.missing_tools():
        pytest.skip("software TPM not installed")
    state = tmp_path_factory.mktemp("platform")
    with SoftwareTpmPlatform(PlatformConfig(state)):
        pass
    return state


@pytest.fixture
def platform(platform_dir: Path) -> Iterator[SoftwareTpmPlatform]:
    """A running swtpm on the session's provisioned state; PCRs start fresh each test."""
    with SoftwareTpmPlatform(PlatformConfig(platform_dir)) as started:
        yield started
