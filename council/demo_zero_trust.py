"""Demo step 4, zero trust v2, against real processes.

A local CA issues mTLS identities; the gateway (``council gateway serve``) runs in front of
the PDP; an operator's admin call is refused while their device has no posture on record,
then succeeds with a short-lived, certificate-bound token once the posture agent has
submitted a signed report of this host's real facts (checked against the gateway's lab
posture profile, printed below). A webhook PEP (``council sidecar webhook``) forwards a
properly signed event and refuses, with the policy's reason, one the policy denies.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from council.opa_tool import PROJECT_ROOT
from council.processes import spawn_council
from pep_sidecars.webhook_signing import sign

TRUST_DOMAIN = "council.demo"
OPERATOR = f"spiffe://{TRUST_DOMAIN}/cli/operator"
DEVICE = "operator-laptop"
# This demo runs on a CI VM: no disk encryption and no firewall to show. The lab profile says
# so openly; freshness, patch age and the signature are still enforced.
LAB_PROFILE = {
    "max_days_since_update": 30,
    "require_disk_encryption": False,
    "require_firewall": False,
    "require_screen_lock": True,
}


@dataclass
class ZeroTrustOutcome:
    """What step 4 observed, for the demo's narration and its test."""

    admin_without_posture: int = -1
    admin_without_posture_reason: str = ""
    posture_facts: dict[str, Any] = field(default_factory=dict)
    admin_with_posture: int = -1
    token_lifetime: int = 0
    webhook_allowed_status: int = 0
    webhook_denied_status: int = 0
    webhook_denied_problem: dict[str, Any] = field(default_factory=dict)
    connector_allowed_status: int = 0
    connector_rows: int = 0
    connector_denied_status: int = 0
    connector_denied_problem: dict[str, Any] = field(default_factory=dict)


def _council(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "council", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
        check=False,
        **kwargs,
    )


def _must(result: subprocess.CompletedProcess[str]) -> str:
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(result.args[3:6])} failed: {result.stderr or result.stdout}")
    return result.stdout


def _post_webhook(
    port: int, sender: str, secret: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode()
    msg_id = "msg_" + secrets.token_hex(8)
    stamp = str(int(time.time()))
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/hooks/events",
        data=data,
        method="POST",
        headers={
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": stamp,
            "webhook-signature": sign(secret, msg_id, stamp, data),
            "webhook-sender": sender,
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, {}
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _token_lifetime(gateway: str, ca_cert: Path, identity: Path) -> int:
    """Exchange the identity's certificate for an admin token; its lifetime in seconds."""
    import grpc

    from gateway.mtls import channel_credentials
    from proto.council.v1 import tokens_pb2, tokens_pb2_grpc

    creds = channel_credentials(identity.with_suffix(".crt"), identity.with_suffix(".key"), ca_cert)
    with grpc.secure_channel(gateway, creds) as channel:
        reply = tokens_pb2_grpc.TokensStub(channel).Exchange(
            tokens_pb2.ExchangeRequest(scopes=["admin:quota:write"], bind_to_certificate=True),
            timeout=10,
        )
    return int(reply.expires_in)


def _service_token(
    gateway: str, ca_cert: Path, identity: Path, api_key: str, scopes: list[str]
) -> str:
    """A short-lived token for a service holding an API key (sent over the service's mTLS)."""
    import grpc

    from gateway.mtls import channel_credentials
    from proto.council.v1 import tokens_pb2, tokens_pb2_grpc

    creds = channel_credentials(identity.with_suffix(".crt"), identity.with_suffix(".key"), ca_cert)
    with grpc.secure_channel(gateway, creds) as channel:
        reply = tokens_pb2_grpc.TokensStub(channel).Exchange(
            tokens_pb2.ExchangeRequest(scopes=scopes, audience="council-connector"),
            metadata=[("authorization", f"ApiKey {api_key}")],
            timeout=10,
        )
    return str(reply.access_token)


def _get(url: str, token: str) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, headers={"authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _connector_demo(
    workdir: Path,
    *,
    pdp: str,
    gateway: str,
    admin: list[str],
    ca_cert: Path,
    certs: Path,
    processes: list[subprocess.Popen[str]],
    out: ZeroTrustOutcome,
    say: Callable[[str], None],
) -> None:
    """An analytics service reads through the connector PEP: its dataset is served, a pii
    dataset is refused with the policy's reasons."""
    import sqlite3

    db = workdir / "warehouse.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE sales (region TEXT, amount INTEGER)")
        conn.executemany("INSERT INTO sales VALUES (?, ?)", [("emea", 120), ("apac", 75)])
        conn.execute("CREATE TABLE customers (name TEXT, email TEXT)")
        conn.execute("INSERT INTO customers VALUES ('Ada', 'ada@example.com')")
    config = workdir / "connectors.json"
    labels = {"sales": ["internal"], "customers": ["pii"]}
    config.write_text(json.dumps({"connectors": [
        {"name": "warehouse", "kind": "sqlite", "tenant": "acme",
         "options": {"path": str(db), "labels": labels}},
    ]}))  # fmt: skip
    created = _must(_council(*admin, "apikey", "create", "--subject", "bob", "--tenant", "acme",
                             "--scope", "connector:read:sales"))  # fmt: skip
    api_key = json.loads(created)["api_key"]
    token = _service_token(gateway, ca_cert, certs / "analytics", api_key, ["connector:read:sales"])
    tls = ["--tls-ca", str(ca_cert), "--tls-cert", str(certs / "analytics.crt"),
           "--tls-key", str(certs / "analytics.key")]  # fmt: skip
    match = spawn_council(
        ["sidecar", "connector", "--listen", "127.0.0.1:0", "--pdp", pdp, "--gateway", gateway,
         "--config", str(config), "--usage-spool", str(workdir / "connector-usage.db"), *tls],
        r"listening on http://127\.0\.0\.1:(\d+)",
        processes,
        workdir / "logs" / "connector.log",
    )  # fmt: skip
    base = f"http://127.0.0.1:{match.group(1)}/datasets"
    status, body = _get(f"{base}/sales?op=read&limit=10", token)
    out.connector_allowed_status, out.connector_rows = status, int(body.get("count", 0))
    rows = out.connector_rows
    say(f"analytics (bob, connector:read:sales) reads sales -> HTTP {status}, {rows} rows")
    status, problem = _get(f"{base}/customers?op=read", token)
    out.connector_denied_status, out.connector_denied_problem = status, problem
    say(f"analytics reads customers (labelled pii) -> HTTP {status}")
    for reason in problem.get("reasons", []):
        say(f"    reason: {reason}")


def run_zero_trust(
    workdir: Path,
    pdp: str,
    processes: list[subprocess.Popen[str]],
    say: Callable[[str], None],
) -> ZeroTrustOutcome:
    """Run step 4; processes started here are appended to ``processes`` (caller stops them)."""
    out = ZeroTrustOutcome()
    ca, state, certs = workdir / "ca", workdir / "gateway", workdir / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    _must(_council("ca", "init", "--dir", str(ca), "--trust-domain", TRUST_DOMAIN))
    identities = (
        ("cli", "operator"),
        ("agent", DEVICE),
        ("sidecar", "webhook"),
        ("sidecar", "analytics"),
    )
    for kind, name in identities:
        _must(_council("ca", "issue", "--dir", str(ca), "--kind", kind, "--name", name,
                       "-o", str(certs / name)))  # fmt: skip
    _must(_council("gateway", "bootstrap", "--state", str(state), "--spiffe-id", OPERATOR,
                   "--tenant", "council", "--scope", "admin:*", "--device-id", DEVICE))  # fmt: skip
    profile = workdir / "posture-profile.json"
    profile.write_text(json.dumps(LAB_PROFILE))
    match = spawn_council(
        ["gateway", "serve", "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0",
         "--state", str(state), "--ca", str(ca), "--pdp", pdp,
         "--trust-domain", TRUST_DOMAIN, "--posture-profile", str(profile)],
        r"grpc=(\S+)",
        processes,
        workdir / "logs" / "gateway.log",
    )  # fmt: skip
    gateway = match.group(1)
    say(
        f"gateway up (mTLS, trust domain {TRUST_DOMAIN}) at {gateway}; "
        f"posture profile {LAB_PROFILE}"
    )
    tls = ["--tls-ca", str(ca / "ca.crt")]
    operator = ["--cert", str(certs / "operator.crt"), "--key", str(certs / "operator.key")]
    admin = ["admin", "--gateway", gateway, "--ca-cert", str(ca / "ca.crt"), *operator]
    quota = [
        "quota",
        "set",
        "--tenant",
        "acme",
        "--feature",
        "webhook",
        "--soft",
        "900",
        "--hard",
        "1000",
    ]

    device_tls = [
        *tls,
        "--tls-cert",
        str(certs / f"{DEVICE}.crt"),
        "--tls-key",
        str(certs / f"{DEVICE}.key"),
    ]
    keys = str(workdir / "device-keys")
    _must(_council("agent", "posture", "enroll", "--gateway", gateway, "--key-dir", keys,
                   *device_tls, "--device-id", DEVICE, "--tenant", "council"))  # fmt: skip
    denied = _council(*admin, *quota)
    out.admin_without_posture = denied.returncode
    out.admin_without_posture_reason = (denied.stderr or denied.stdout).strip()
    say(f"admin call before any posture report -> exit {denied.returncode}")
    for line in out.admin_without_posture_reason.splitlines()[:4]:
        say(f"    {line}")

    facts = json.loads(_must(_council("agent", "posture", "collect", "--json")))
    out.posture_facts = {k: v.get("value") for k, v in facts.items() if isinstance(v, dict)}
    say(f"posture agent read this host: {out.posture_facts}")
    _must(
        _council("agent", "posture", "submit", "--gateway", gateway, "--key-dir", keys, *device_tls)
    )
    allowed = _council(*admin, *quota)
    out.admin_with_posture = allowed.returncode
    say(
        "admin call with a short-lived token and a fresh signed posture "
        f"-> exit {allowed.returncode}"
    )
    for line in (allowed.stdout or allowed.stderr).strip().splitlines()[:4]:
        say(f"    {line}")
    out.token_lifetime = _token_lifetime(gateway, ca / "ca.crt", certs / "operator")
    say(
        "the operator's certificate buys a token for admin:quota:write living "
        f"{out.token_lifetime}s"
    )

    secret = "whsec_" + b64encode(secrets.token_bytes(24)).decode()
    senders = workdir / "senders.json"
    senders.write_text(json.dumps({"acme-crm": {"secret": secret, "tenant": "acme"}}))
    hook_state = workdir / "webhook"
    match = spawn_council(
        ["sidecar", "webhook", "--listen", "127.0.0.1:0", "--pdp", pdp, "--senders", str(senders),
         "--state", str(hook_state), "--receiver-db", str(hook_state / "events.db")],
        r"listening on http://127\.0\.0\.1:(\d+)",
        processes,
        workdir / "logs" / "webhook.log",
    )  # fmt: skip
    port = int(match.group(1))
    ok_status, _ = _post_webhook(
        port, "acme-crm", secret, {"type": "customer.created", "data": {"id": "c-1"}}
    )
    out.webhook_allowed_status = ok_status
    say(f"signed customer.created from acme-crm -> HTTP {ok_status} (forwarded to the receiver)")
    status, problem = _post_webhook(
        port, "acme-crm", secret, {"type": "invoice.paid", "data": {"id": "i-9"}}
    )
    out.webhook_denied_status, out.webhook_denied_problem = status, problem
    say(f"signed invoice.paid from acme-crm -> HTTP {status} {problem.get('title', '')}")
    for reason in problem.get("reasons", []):
        say(f"    reason: {reason}")
    if problem.get("remedy"):
        say(f"    what to do: {problem['remedy']}")
    _connector_demo(
        workdir,
        pdp=pdp,
        gateway=gateway,
        admin=admin,
        ca_cert=ca / "ca.crt",
        certs=certs,
        processes=processes,
        out=out,
        say=say,
    )
    return out
