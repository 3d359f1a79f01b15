"""Bundle signatures: Council and the pinned opa accept each other's, refuse the same faults.

Interop runs through ``opa build --bundle signed.tar.gz --verification-key ...``: it
verifies the input bundle's signature before writing anything, needs no Wasm engine, and
takes a fraction of a second.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from council.bundle_cmd import add_sign_parser, add_verify_parser
from council.opa_tool import run_opa
from pdp.bundle import read_bundle
from pdp.bundle_signing import (
    BundleSignatureError,
    VerificationKey,
    VerificationKeys,
    file_digest,
    sign_bundle,
    verify_bundle,
)

POLICY = """package x

default allow := false

allow if input.user == data.x.admin
"""

T = TypeVar("T")
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class KeyPair:
    """Signing and verification material: PEM (or the secret), plus the loaded signer."""

    alg: str
    private: bytes
    public: bytes
    signer: Any

    def trust(self, alg: str | None = None, **options: Any) -> VerificationKeys:
        """Council's keys for this pair, as ``opa --verification-key`` would configure."""
        return VerificationKeys.single(self.public, algorithm=alg or self.alg, **options)


def _pair(alg: str, key: PrivateKey) -> KeyPair:
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyPair(alg, private, public, key)


def _secret(alg: str, secret: bytes) -> KeyPair:
    return KeyPair(alg, secret, secret, secret)


@pytest.fixture(scope="module")
def keys() -> dict[str, KeyPair]:
    """One key pair per algorithm family; ``rsa2`` etc. are unrelated keys of the same kind."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    p256 = ec.generate_private_key(ec.SECP256R1())
    return {
        "rsa": _pair("RS256", rsa_key),
        "rsa2": _pair("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "pss": _pair("PS384", rsa_key),
        "ec": _pair("ES256", p256),
        "ec2": _pair("ES256", ec.generate_private_key(ec.SECP256R1())),
        "p256_as_es384": _pair("ES384", p256),
        "ec384": _pair("ES384", ec.generate_private_key(ec.SECP384R1())),
        "ec521": _pair("ES512", ec.generate_private_key(ec.SECP521R1())),
        "ed": _pair("EdDSA", ed25519.Ed25519PrivateKey.generate()),
        "hmac": _secret("HS256", b"a-shared-secret-of-32-bytes-long"),
        "hmac2": _secret("HS256", b"another-secret-of-32-bytes-long!"),
        "hmac512": _secret("HS512", b"s" * 64),
    }


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("signing")


@pytest.fixture(scope="module")
def source_dir(work: Path) -> Path:
    src = work / "src"
    src.mkdir()
    (src / "x.rego").write_text(POLICY)
    (src / "data.json").write_text('{"x": {"admin": "bob", "limit": 1.50}}')
    return src


@pytest.fixture(scope="module")
def wasm_bundle(work: Path, source_dir: Path) -> bytes:
    """An unsigned Wasm bundle, as ``council policy build`` makes it."""
    out = work / "plain.tar.gz"
    res = run_opa(["build", "-t", "wasm", "-e", "x/allow", "-o", str(out), str(source_dir)])
    assert res.returncode == 0, res.stderr
    return out.read_bytes()


def _write(work: Path, data: bytes, suffix: str) -> Path:
    # Content-addressed, so concurrent opa runs never share a file.
    path = work / f"{hashlib.sha256(data).hexdigest()[:16]}{suffix}"
    path.write_bytes(data)
    return path


def _parallel(calls: list[Callable[[], T]]) -> list[T]:
    """Run opa invocations side by side: each one is mostly process start-up."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda call: call(), calls))


def _opa_flags(work: Path, pair: KeyPair, *extra: str, alg: str | None = None) -> list[str]:
    public = _write(work, pair.public, ".pub")
    return ["--verification-key", str(public), "--signing-alg", alg or pair.alg, *extra]


def _opa_verifies(work: Path, bundle: bytes, flags: Sequence[str]) -> tuple[bool, str]:
    """Whether ``opa build --bundle`` accepts ``bundle``'s signature; opa's error text."""
    path = _write(work, bundle, ".tar.gz")
    out = path.with_suffix(".out")
    res = run_opa(["build", "--bundle", str(path), "-o", str(out), *flags])
    return res.returncode == 0, res.stderr + res.stdout


def _members(bundle: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def _edit(bundle: bytes, edit: Callable[[dict[str, bytes]], object]) -> bytes:
    """The bundle with its files changed by ``edit`` (a dict of tar member → bytes)."""
    files = _members(bundle)
    edit(files)
    out = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w") as tar,
    ):
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _b64json(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _token(bundle: bytes) -> str:
    return str(json.loads(_members(bundle)["/.signatures.json"])["signatures"][0])


def _with_tokens(*tokens: str) -> Callable[[dict[str, bytes]], object]:
    document = json.dumps({"signatures": list(tokens)}).encode()
    return lambda files: files.update({"/.signatures.json": document})


def _refusal(bundle: bytes, trusted: VerificationKeys) -> BundleSignatureError:
    with pytest.raises(BundleSignatureError) as exc:
        verify_bundle(read_bundle(bundle), trusted)
    return exc.value


# --- interop ------------------------------------------------------------------------------


def test_opa_accepts_council_signatures(
    keys: dict[str, KeyPair], wasm_bundle: bytes, work: Path
) -> None:
    """Every algorithm, with a key id and a scope: ``opa build --bundle`` verifies it."""
    # ES384 and HS256 go through opa in the command-line tests.
    names = ["rsa", "pss", "ec", "ec521", "ed", "hmac512"]
    signed = {
        n: sign_bundle(wasm_bundle, keys[n].signer, keys[n].alg, keyid="ci", scope="prod")
        for n in names
    }
    flags = {
        n: _opa_flags(work, keys[n], "--verification-key-id", "ci", "--scope", "prod")
        for n in names
    }
    results = _parallel([partial(_opa_verifies, work, signed[n], flags[n]) for n in names])
    assert {n: r for n, r in zip(names, results, strict=True) if not r[0]} == {}
    for n in names:
        verified = verify_bundle(signed[n], keys[n].trust(keyid="ci", scope="prod"))
        assert (verified.keyid, verified.scope) == ("ci", "prod")


def test_council_signature_format_is_opas(keys: dict[str, KeyPair], wasm_bundle: bytes) -> None:
    signed = sign_bundle(wasm_bundle, keys["rsa"].signer, "RS256", keyid="ci")
    members = _members(signed)
    assert members["/.signatures.json"].startswith(b'{\n "signatures": [\n  "')
    head, body, _ = _token(signed).split(".")
    assert _b64json(head) == {"alg": "RS256", "kid": "ci", "typ": "JWT"}
    payload = _b64json(body)
    assert payload["keyid"] == "ci"
    assert [f["name"] for f in payload["files"]] == [
        name.lstrip("/") for name in members if name != "/.signatures.json"
    ]
    assert {"data.json", "policy.wasm", ".manifest"} <= {f["name"] for f in payload["files"]}
    assert {f["algorithm"] for f in payload["files"]} == {"SHA-256"}
    # Signing again replaces the signature rather than adding a second one.
    resigned = sign_bundle(signed, keys["ec"].signer, "ES256")
    assert [n for n in _members(resigned) if n.endswith(".signatures.json")] == [
        "/.signatures.json"
    ]
    verify_bundle(resigned, keys["ec"].trust())


def test_council_accepts_opa_signatures(
    keys: dict[str, KeyPair], source_dir: Path, work: Path
) -> None:
    """``opa build --signing-key`` bundles verify, including OPA's lax ES384 on P-256."""
    # RS256 comes from `opa sign` in the next test.
    names = ["pss", "ec", "p256_as_es384", "ed", "hmac512"]

    def build(name: str) -> Path:
        key_file = _write(work, keys[name].private, ".key")
        out = work / f"opa-signed-{name}.tar.gz"
        res = run_opa(
            [
                "build", "-t", "wasm", "-e", "x/allow", "--bundle", "-o", str(out),
                "--signing-key", str(key_file), "--signing-alg", keys[name].alg, str(source_dir),
            ]
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        return out

    for name, out in zip(names, _parallel([partial(build, n) for n in names]), strict=True):
        verified = verify_bundle(out, keys[name].trust())
        assert verified.keyid == "default", name
        assert "policy.wasm" in verified.signed_files
        assert verified.bundle.wasm


def test_council_accepts_opa_sign_with_claims(
    keys: dict[str, KeyPair], wasm_bundle: bytes, work: Path
) -> None:
    """``opa sign`` over a tarball: no kid header, keyid and scope from ``--claims-file``."""
    claims = _write(work, b'{"scope": "write", "keyid": "deploy"}', ".json")
    key_file = _write(work, keys["rsa"].private, ".key")
    bundle_path = _write(work, wasm_bundle, ".tar.gz")
    sig_dir = work / "opa-sign"
    sig_dir.mkdir()
    res = run_opa(
        [
            "sign", "--bundle", str(bundle_path), "--signing-key", str(key_file),
            "--claims-file", str(claims), "-o", str(sig_dir),
        ]
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    signatures = (sig_dir / ".signatures.json").read_bytes()
    signed = _edit(wasm_bundle, lambda f: f.update({"/.signatures.json": signatures}))
    trusted = VerificationKeys({"deploy": VerificationKey(keys["rsa"].public, scope="write")})
    assert verify_bundle(signed, trusted).keyid == "deploy"
    unscoped = VerificationKeys({"deploy": VerificationKey(keys["rsa"].public)})
    assert _refusal(signed, unscoped).reason == "wrong_scope"


def test_digests_match_opa_on_awkward_documents(keys: dict[str, KeyPair], work: Path) -> None:
    """Structured files hash over OPA's canonical form: numbers, escapes, YAML 1.2 scalars."""
    root = work / "awkward"
    files = {
        ".manifest": b'{"revision": "r1", "roots": ["a", "b", "c"], "metadata": {"n": 1.10}}',
        "a/data.json": b'\xef\xbb\xbf{"z": 1.50, "a": [1E3, -0, 1e-7, 1234567890123456789012],'
        b' "s": "<&>\\u2028\\ud800 \\ud83d\\ude00\\b\\f\\u0001\\u007f\\/", "\xe2\x80\xa9": null}',
        "a/p.rego": b"package a\n",
        "b/data.yaml": b"a: yes\nb: on\nc: 0777\nd: 08\ne: 1_000\nf: 1.0\ng: 1e3\nh: 2001-12-14\n"
        b"i: .5\nj: 0x1F\nk: 1e-7\nl: 123456789012345678901\nm: 1:20\nn: +5\no: 1e400\n"
        b"p: [True, FALSE, Null, ~]\nq: 3.0e21\nr: &anc {k: 1}\ns: *anc\nt: -0.0\n",
        "c/data.yml": b"1: one\ntrue: t\nbase: &b {x: 1, y: 2}\nmerged:\n  <<: *b\n  y: 3\n",
        "c/d/data.json": b"",
        "c/e/data.yaml": b"---\na: 1\n---\nb: 2\n",
        "c/f/data.json": b'{"bad utf-8": "\xff\xe2\x82"}',
        "c/g/data.json": b'{"not JSON, so YAML": NaN, "b": -Infinity}',
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    key_file = _write(work, keys["rsa"].private, ".key")
    res = run_opa(["sign", "--bundle", ".", "--signing-key", str(key_file)], cwd=root)
    assert res.returncode == 0, res.stderr
    token = json.loads((root / ".signatures.json").read_text())["signatures"][0]
    body = token.split(".")[1]
    listed = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))["files"]
    assert {f["name"] for f in listed} == set(files)
    for entry in listed:
        assert file_digest(entry["name"], files[entry["name"]]) == entry["hash"], entry["name"]


# --- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "family",
    [("rsa", "rsa2", "RS512"), ("ec", "ec2", "ES384"), ("hmac", "hmac2", "HS384")],
    ids=["rsa", "ecdsa", "hmac"],
)
def test_refusals(
    family: tuple[str, str, str], keys: dict[str, KeyPair], wasm_bundle: bytes
) -> None:
    """Every fault, for RSA, ECDSA and HMAC: its reason code and a telling message."""
    name, other, other_alg = family
    pair = keys[name]
    signed = sign_bundle(wasm_bundle, pair.signer, pair.alg, keyid="ci")
    trusted = pair.trust()
    token = _token(signed)
    head, body, sig = token.split(".")
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    cases: dict[str, tuple[bytes, VerificationKeys, str, str]] = {
        "unsigned": (wasm_bundle, trusted, "unsigned", "no .signatures.json"),
        "no token": (_edit(signed, _with_tokens()), trusted, "unsigned", "exactly one"),
        "two tokens": (
            _edit(signed, _with_tokens(token, token)), trusted, "multiple_signatures",
            "exactly one",
        ),
        "two signature files": (
            _edit(signed, lambda f: f.update({"/sub/.signatures.json": f["/.signatures.json"]})),
            trusted, "multiple_signatures", "several signatures files",
        ),
        "not a JWS": (
            _edit(signed, _with_tokens(f"{head}.{body}")), trusted, "malformed", "compact JWS",
        ),
        "other key": (signed, keys[other].trust(), "bad_signature", "does not verify"),
        "flipped bit": (
            _edit(signed, _with_tokens(f"{head}.{body}.{flipped}")), trusted, "bad_signature",
            "does not verify",
        ),
        "unknown kid": (
            signed, VerificationKeys({"prod": VerificationKey(pair.public, pair.alg)}),
            "unknown_key", "'ci'",
        ),
        "no kid": (
            sign_bundle(wasm_bundle, pair.signer, pair.alg),
            VerificationKeys({"ci": VerificationKey(pair.public, pair.alg)}),
            "unknown_key", "names no key",
        ),
        "wrong algorithm": (signed, pair.trust(other_alg), "wrong_algorithm", other_alg),
        "scope expected": (signed, pair.trust(scope="prod"), "wrong_scope", "'prod'"),
        "scope unexpected": (
            sign_bundle(wasm_bundle, pair.signer, pair.alg, scope="dev"), trusted,
            "wrong_scope", "'dev'",
        ),
        "tampered": (
            _edit(signed, lambda f: f.update({"/data.json": b'{"x": {"admin": "eve"}}'})),
            trusted, "digest_mismatch", "/data.json was modified",
        ),
        "extra file": (
            _edit(signed, lambda f: f.update({"/backdoor.rego": b"package backdoor\n"})),
            trusted, "unsigned_file", "/backdoor.rego",
        ),
        "missing file": (
            _edit(signed, lambda f: f.pop("/data.json")), trusted, "missing_file", "/data.json",
        ),
    }  # fmt: skip
    for label, (bundle, keyset, reason, text) in cases.items():
        error = _refusal(bundle, keyset)
        assert (label, error.reason) == (label, reason), error.message
        assert text in error.message, (label, error.message)


def test_opa_refuses_the_same_bundles(
    keys: dict[str, KeyPair], wasm_bundle: bytes, work: Path
) -> None:
    """Each fault Council refuses, the pinned opa refuses too (RSA, flags as on its CLI)."""
    pair = keys["rsa"]
    signed = sign_bundle(wasm_bundle, pair.signer, "RS256")
    token = _token(signed)
    flags = _opa_flags(work, pair)
    cases: dict[str, tuple[bytes, list[str], VerificationKeys, str]] = {
        "unsigned": (wasm_bundle, flags, pair.trust(), "unsigned"),
        "two tokens": (
            _edit(signed, _with_tokens(token, token)), flags, pair.trust(), "multiple_signatures",
        ),
        "two signature files": (
            _edit(signed, lambda f: f.update({"/sub/.signatures.json": f["/.signatures.json"]})),
            flags, pair.trust(), "multiple_signatures",
        ),
        "other key": (
            signed, _opa_flags(work, keys["rsa2"]), keys["rsa2"].trust(), "bad_signature",
        ),
        "wrong algorithm": (
            signed, _opa_flags(work, pair, alg="RS512"), pair.trust("RS512"), "wrong_algorithm",
        ),
        "scope expected": (
            signed, [*flags, "--scope", "prod"], pair.trust(scope="prod"), "wrong_scope",
        ),
        "scope unexpected": (
            sign_bundle(wasm_bundle, pair.signer, "RS256", scope="dev"), flags, pair.trust(),
            "wrong_scope",
        ),
        "tampered": (
            _edit(signed, lambda f: f.update({"/data.json": b'{"x": {"admin": "eve"}}'})),
            flags, pair.trust(), "digest_mismatch",
        ),
        "extra file": (
            _edit(signed, lambda f: f.update({"/backdoor.rego": b"package backdoor\n"})),
            flags, pair.trust(), "unsigned_file",
        ),
        "missing file": (
            _edit(signed, lambda f: f.pop("/data.json")), flags, pair.trust(), "missing_file",
        ),
    }  # fmt: skip
    results = _parallel(
        [partial(_opa_verifies, work, bundle, opa) for bundle, opa, _, _ in cases.values()]
    )
    assert [label for label, (ok, _) in zip(cases, results, strict=True) if ok] == []
    for label, (bundle, _, trusted, reason) in cases.items():
        assert (label, _refusal(bundle, trusted).reason) == (label, reason)


def test_formatting_changes_to_data_keep_the_signature(
    keys: dict[str, KeyPair], wasm_bundle: bytes
) -> None:
    """As in OPA, data and manifest digests cover values, not layout or key order.

    Number literals are part of the value (Go keeps them as json.Number): 1.50 is not 1.5.
    """
    signed = sign_bundle(wasm_bundle, keys["ec"].signer, "ES256")
    assert _members(signed)["/data.json"] == b'{"x":{"admin":"bob","limit":1.50}}\n'
    relaid = b'{\n  "x": {\n    "limit": 1.50,\n    "admin": "bob"\n  }\n}\n'
    verify_bundle(_edit(signed, lambda f: f.update({"/data.json": relaid})), keys["ec"].trust())
    renumbered = b'{"x": {"admin": "bob", "limit": 1.5}}'
    changed = _edit(signed, lambda f: f.update({"/data.json": renumbered}))
    assert _refusal(changed, keys["ec"].trust()).reason == "digest_mismatch"


def test_exclude_files(keys: dict[str, KeyPair], wasm_bundle: bytes) -> None:
    signed = sign_bundle(wasm_bundle, keys["hmac"].signer, "HS256")
    extra = _edit(signed, lambda f: f.update({"/notes/README.txt": b"not signed"}))
    verified = verify_bundle(extra, keys["hmac"].trust(exclude_files=["notes/*.txt"]))
    assert verified.excluded_files == ("notes/README.txt",)
    assert "notes/README.txt" not in verified.signed_files
    # As with Go's filepath.Match, * does not cross a directory separator.
    refused = _refusal(extra, keys["hmac"].trust(exclude_files=["*.txt"]))
    assert refused.reason == "unsigned_file"
    # Exclusion skips a file that is there; as in OPA, a signed file that is absent is
    # still missing.
    data_signed = _edit(extra, lambda f: f.update({"/data.json": b"{}"}))
    verify_bundle(data_signed, keys["hmac"].trust(exclude_files=["notes/*", "data.[a-z]son"]))
    dropped = _edit(signed, lambda f: f.pop("/data.json"))
    refused = _refusal(dropped, keys["hmac"].trust(exclude_files=["data.json"]))
    assert refused.reason == "missing_file"


def test_verification_key_forms(keys: dict[str, KeyPair], wasm_bundle: bytes) -> None:
    """A certificate, or the private key itself, verifies: OPA's key parsing allows both."""
    private = keys["rsa"].signer
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bundle signer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(private, hashes.SHA256())
    )
    signed = sign_bundle(wasm_bundle, private, "RS256")
    for material in (cert.public_bytes(serialization.Encoding.PEM), keys["rsa"].private):
        verify_bundle(signed, VerificationKeys.single(material))


@pytest.mark.parametrize(
    ("build", "reason", "text"),
    [
        (lambda k: VerificationKeys.single(k["ec"].public, algorithm="RS256"), "key_error", "RSA"),
        (lambda k: k["rsa"].trust("none"), "unsupported", "'none'"),
        (lambda k: VerificationKeys.single(b"", algorithm="HS256"), "key_error", "empty"),
        (lambda k: VerificationKeys.single(b"no pem here"), "key_error", "PEM"),
        (lambda k: VerificationKeys({}), "key_error", "no verification keys"),
        (
            lambda k: VerificationKeys({"a": VerificationKey(k["rsa"].public)}, keyid="b"),
            "key_error", "'b'",
        ),
        (lambda k: k["rsa"].trust(exclude_files=["[]"]), "key_error", "pattern"),
        (lambda k: sign_bundle(b"", k["rsa"].public, "RS256"), "key_error", "private key"),
        (lambda k: sign_bundle(b"", k["ec"].signer, "ES384"), "key_error", "secp384r1"),
        (lambda k: sign_bundle(b"", k["ed"].signer, "PS256"), "key_error", "RSA"),
        (lambda k: sign_bundle(b"", k["ed"].signer, "HS256"), "key_error", "shared secret"),
    ],
)  # fmt: skip
def test_unusable_keys(
    build: Callable[[dict[str, KeyPair]], object], reason: str, text: str, keys: dict[str, KeyPair]
) -> None:
    with pytest.raises(BundleSignatureError) as exc:
        build(keys)
    assert (exc.value.reason, text in exc.value.message) == (reason, True), exc.value.message


# --- command line -------------------------------------------------------------------------


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="council")
    policy = parser.add_subparsers(dest="command", required=True).add_parser("policy")
    group = policy.add_subparsers(dest="policy_cmd", required=True)
    add_sign_parser(group)
    add_verify_parser(group)
    args = parser.parse_args(["policy", *argv])
    return int(args.func(args))


def test_cli_sign_and_verify(
    keys: dict[str, KeyPair], wasm_bundle: bytes, work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = _write(work, wasm_bundle, ".tar.gz")
    signed = work / "cli-signed.tar.gz"
    key = _write(work, keys["ec384"].private, ".key")
    public = _write(work, keys["ec384"].public, ".pub")
    sign = ["sign", str(plain), "--signing-key", str(key), "--signing-alg", "ES384"]
    assert _cli(*sign, "--keyid", "ci", "--scope", "prod", "-o", str(signed)) == 0
    assert "signed: ES384, key id 'ci', scope 'prod'" in capsys.readouterr().out
    verify = ["verify", str(signed), "--verification-key", str(public), "--signing-alg", "ES384"]
    assert _cli(*verify, "--scope", "prod", "--verification-key-id", "ci") == 0
    assert "key 'ci' (ES384), scope 'prod'" in capsys.readouterr().out
    assert _cli(*verify) == 1
    assert "scope" in capsys.readouterr().err
    assert _opa_verifies(work, signed.read_bytes(), [*verify[2:], "--scope", "prod"])[0]


def test_cli_hmac_secret_inline_and_in_place(
    wasm_bundle: bytes, work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = work / "cli-in-place.tar.gz"
    bundle.write_bytes(wasm_bundle)
    assert _cli("sign", str(bundle), "--signing-key", "topsecret", "--signing-alg", "HS256") == 0
    opa_flags = ["--verification-key", "topsecret", "--signing-alg", "HS256"]
    assert _opa_verifies(work, bundle.read_bytes(), opa_flags)[0]
    bundle.write_bytes(_edit(bundle.read_bytes(), lambda f: f.update({"/extra/notes.md": b"x"})))
    verify = ["verify", str(bundle), "--verification-key", "topsecret", "--signing-alg", "HS256"]
    assert _cli(*verify) == 1
    assert "/extra/notes.md is not covered" in capsys.readouterr().err
    assert _cli(*verify, "--exclude-files-verify", "extra/*.md,other") == 0
    assert "not checked: extra/notes.md" in capsys.readouterr().out
    absent = ["verify", str(work / "absent.tar.gz"), *verify[2:]]
    assert _cli(*absent) == 1
    assert "absent.tar.gz" in capsys.readouterr().err
    assert _cli("verify", str(bundle), "--verification-key", str(work / "typo.pem")) == 1
    assert "key file not found" in capsys.readouterr().err
