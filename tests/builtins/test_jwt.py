"""Tests for the io.jwt.* builtins: unit tests and a differential run against ``opa eval``."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from cryptography.x509.oid import NameOID

from pdp.builtins import jwt as jwtmod
from pdp.builtins._goencoding import pem_decode
from pdp.builtins.base import BuiltinError, EvalContext, OperandError
from pdp.values import RegoSet, rego_equal

OPA = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "opa"
SPECS = {spec.name: spec for spec in jwtmod.BUILTINS}
NOW_NS = 1_700_000_000 * 10**9


# --- key material and token construction (independent of the module under test) -----------


def b64(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64int(value: int, size: int | None = None) -> str:
    return b64(value.to_bytes(size or (value.bit_length() + 7) // 8, "big"))


RSA_KEY = rsa.generate_private_key(65537, 2048)
RSA_OTHER = rsa.generate_private_key(65537, 2048)
EC_KEYS = {
    "ES256": ec.generate_private_key(ec.SECP256R1()),
    "ES384": ec.generate_private_key(ec.SECP384R1()),
    "ES512": ec.generate_private_key(ec.SECP521R1()),
}
ED_KEY = ed25519.Ed25519PrivateKey.generate()
HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def pem_public(key: Any) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def certificate(key: rsa.RSAPrivateKey) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "council-test")])
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def rsa_jwk(key: rsa.RSAPrivateKey, private: bool = False, **extra: str) -> dict[str, str]:
    pub = key.public_key().public_numbers()
    jwk = {"kty": "RSA", "n": b64int(pub.n), "e": b64int(pub.e)}
    if private:
        priv = key.private_numbers()
        jwk |= {"d": b64int(priv.d), "p": b64int(priv.p), "q": b64int(priv.q)}
    return jwk | extra


def ec_jwk(key: ec.EllipticCurvePrivateKey, private: bool = False) -> dict[str, str]:
    size = (key.curve.key_size + 7) // 8
    crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}[key.curve.name]
    pub = key.public_key().public_numbers()
    jwk = {"kty": "EC", "crv": crv, "x": b64int(pub.x, size), "y": b64int(pub.y, size)}
    if private:
        jwk["d"] = b64int(key.private_numbers().private_value, size)
    return jwk


def ed_jwk(key: ed25519.Ed25519PrivateKey, private: bool = False) -> dict[str, str]:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)}
    if private:
        seed = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        jwk["d"] = b64(seed)
    return jwk


def sign(alg: str, message: bytes, key: Any) -> bytes:
    family, bits = alg[:2], alg[2:]
    if alg == "EdDSA":
        return key.sign(message)
    h = HASHES[bits]()
    if family == "HS":
        return hmac.new(key, message, getattr(hashlib, f"sha{bits}")).digest()
    if family == "RS":
        return key.sign(message, padding.PKCS1v15(), h)
    if family == "PS":
        return key.sign(message, padding.PSS(padding.MGF1(h), h.digest_size), h)
    r, s = utils.decode_dss_signature(key.sign(message, ec.ECDSA(h)))
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def token(header: Any, payload: Any, key: Any = b"secret", alg: str | None = None) -> str:
    """A compact JWS; header/payload may be dicts (JSON-encoded) or raw strings."""
    h = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    p = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    message = f"{b64(h)}.{b64(p)}"
    if alg is None:
        alg = header["alg"] if isinstance(header, dict) else "HS256"
    return f"{message}.{b64(sign(alg, message.encode(), key))}"


def hs(payload: Any, secret: bytes = b"secret", **header: Any) -> str:
    return token({"alg": "HS256", **header}, payload, secret)


RSA_PEM = pem_public(RSA_KEY)
RSA_CERT = certificate(RSA_KEY)
RSA_JWK = json.dumps(rsa_jwk(RSA_KEY))
ED_PEM = pem_public(ED_KEY)
JWKS = json.dumps(
    {
        "keys": [
            rsa_jwk(RSA_OTHER, kid="other"),
            rsa_jwk(RSA_KEY, kid="main", alg="RS256"),
            ec_jwk(EC_KEYS["ES256"]) | {"kid": "ec"},
            {"kty": "oct", "k": b64("secret"), "kid": "sym"},
        ]
    }
)
OCT = {"kty": "oct", "k": b64("secret")}
FAR_FUTURE = 4_000_000_000
JWT_HEADER = {"alg": "HS256", "typ": "JWT"}
HDR = b64(json.dumps(JWT_HEADER))
BAD_UTF8 = b64(b'{"a":"\xff\xfe"}')
SURROGATE = b64('{"a":"\\ud800x"}')
DUP_KEYS = b64('{"a":1,"a":2}')


# --- differential cases -------------------------------------------------------------------

Case = tuple[str, str, list[Any]]


def _decode_cases() -> list[Case]:
    bad_payloads = [
        "",
        " ",
        "{",
        '{"a":',
        "{}x",
        "{} {}",
        '{} "tail"',
        "{} 12",
        "{} true",
        "{} null",
        "{} ]",
        '{"a":1,}',
        "[1, 2",
        "nul",
        "tru",
        '{"a": fals}',
        '"\x01"',
        '{"a":"\\q"}',
        '{"a":"\\u12G4"}',
        "1.x",
        "-",
        "1e+",
        "[1",
        '{"a" 1}',
        '{"a":1 "b":2}',
        "[1 2]",
        "{1:2}",
        "'x'",
        "[1]",
        '"str"',
        "12a",
    ]
    cases: list[Case] = [
        ("io.jwt.decode", f"payload{i}", [f"{HDR}.{b64(p)}.{b64('sig')}"])
        for i, p in enumerate(bad_payloads)
    ]
    nested = hs({"sub": "inner"})
    cases += [
        ("io.jwt.decode", "valid", [hs({"sub": "x", "n": 1.5, "big": 10**30, "e": 1e400})]),
        ("io.jwt.decode", "nested", [token({"alg": "HS256", "cty": "JWT"}, f'"{nested}"')]),
        ("io.jwt.decode", "nested_bad", [token({"alg": "HS256", "cty": "JWT"}, "abc")]),
        ("io.jwt.decode", "cty_other", [hs({"a": 1}, cty="jwt")]),
        ("io.jwt.decode", "no_period", ["abc"]),
        ("io.jwt.decode", "two_parts", ["a.b"]),
        ("io.jwt.decode", "four_parts", ["a.b.c.d"]),
        ("io.jwt.decode", "header_b64_len", ["a.b.c"]),
        ("io.jwt.decode", "header_b64_char", ["eyJ!.e30.c2ln"]),
        ("io.jwt.decode", "header_b64_pad", ["eyJ=abc.e30.c2ln"]),
        ("io.jwt.decode", "header_not_json", [f"{b64('{x')}.e30.c2ln"]),
        ("io.jwt.decode", "header_array", [f"{b64('[1]')}.e30.c2ln"]),
        ("io.jwt.decode", "jwe", [f"{b64(json.dumps({'alg': 'x', 'enc': 'y'}))}.e30.c2ln"]),
        ("io.jwt.decode", "payload_b64", [f"{HDR}.e30!!.c2ln"]),
        ("io.jwt.decode", "sig_b64", [f"{HDR}.e30.c2l*"]),
        ("io.jwt.decode", "sig_b64_len", [f"{HDR}.e30.c2lnX"]),
        ("io.jwt.decode", "padded", [f"{HDR}=.e30=.c2ln"]),
        ("io.jwt.decode", "newlines_in_b64", [f"{HDR}.e3\n0.c2ln"]),
        ("io.jwt.decode", "bad_utf8", [f"{HDR}.{BAD_UTF8}.c2ln"]),
        ("io.jwt.decode", "surrogate", [f"{HDR}.{SURROGATE}.c2ln"]),
        ("io.jwt.decode", "dup_keys", [f"{HDR}.{DUP_KEYS}.c2ln"]),
        ("io.jwt.decode", "not_string", [5]),
    ]
    return cases


def _verify_cases() -> list[Case]:
    cases: list[Case] = []
    for bits in ("256", "384", "512"):
        name = f"io.jwt.verify_hs{bits}"
        good = token({"alg": f"HS{bits}"}, {"a": 1}, b"k\xc3\xa9y", f"HS{bits}")
        cases += [
            (name, "ok", [good, "kéy"]),
            (name, "wrong_secret", [good, "other"]),
            (name, "bad_sig", [good[:-2] + "!!", "kéy"]),
            (name, "sections", ["a.b", "kéy"]),
            (name, "secret_type", [good, 5]),
        ]
        rs = token({"alg": f"RS{bits}"}, {"a": 1}, RSA_KEY)
        ps = token({"alg": f"PS{bits}"}, {"a": 1}, RSA_KEY)
        es = token({"alg": f"ES{bits}"}, {"a": 1}, EC_KEYS[f"ES{bits}"])
        cases += [
            (f"io.jwt.verify_rs{bits}", "pem", [rs, RSA_PEM]),
            (f"io.jwt.verify_rs{bits}", "cert", [rs, RSA_CERT]),
            (f"io.jwt.verify_rs{bits}", "jwk", [rs, RSA_JWK]),
            (f"io.jwt.verify_rs{bits}", "other_key", [rs, pem_public(RSA_OTHER)]),
            (f"io.jwt.verify_rs{bits}", "ps_token", [ps, RSA_PEM]),
            (f"io.jwt.verify_ps{bits}", "pem", [ps, RSA_PEM]),
            (f"io.jwt.verify_ps{bits}", "rs_token", [rs, RSA_PEM]),
            (f"io.jwt.verify_es{bits}", "pem", [es, pem_public(EC_KEYS[f"ES{bits}"])]),
            (f"io.jwt.verify_es{bits}", "jwk", [es, json.dumps(ec_jwk(EC_KEYS[f"ES{bits}"]))]),
            (f"io.jwt.verify_es{bits}", "rsa_key", [es, RSA_PEM]),
        ]
    rs = token({"alg": "RS256", "kid": "main"}, {}, RSA_KEY)
    rs_other = token({"alg": "RS256", "kid": "main"}, {}, RSA_OTHER)
    rs_nokid = token({"alg": "RS256"}, {}, RSA_OTHER)
    ed = token({"alg": "EdDSA"}, {"a": 1}, ED_KEY)
    bad_pem = "-----BEGIN PUBLIC KEY-----\nYQ==\n-----END PUBLIC KEY-----\n"
    cases += [
        ("io.jwt.verify_rs256", "jwks_kid", [rs, JWKS]),
        ("io.jwt.verify_rs256", "jwks_kid_wrong_key", [rs_other, JWKS]),
        ("io.jwt.verify_rs256", "jwks_no_kid", [rs_nokid, JWKS]),
        ("io.jwt.verify_rs256", "private_jwk", [rs, json.dumps(rsa_jwk(RSA_KEY, True))]),
        ("io.jwt.verify_rs256", "pem_trailing", [rs, RSA_PEM + "\n"]),
        ("io.jwt.verify_rs256", "pem_prefix", [rs, "junk\n" + RSA_PEM]),
        ("io.jwt.verify_rs256", "pem_other_type", [rs, RSA_PEM.replace("PUBLIC", "FOO")]),
        ("io.jwt.verify_rs256", "pem_bad_der", [rs, bad_pem]),
        ("io.jwt.verify_rs256", "cert_bad_der", [rs, bad_pem.replace("PUBLIC KEY", "CERTIFICATE")]),
        ("io.jwt.verify_rs256", "not_json", [rs, "nope"]),
        ("io.jwt.verify_rs256", "empty", [rs, ""]),
        ("io.jwt.verify_rs256", "jwk_no_kty", [rs, "{}"]),
        ("io.jwt.verify_rs256", "jwk_array", [rs, "[]"]),
        ("io.jwt.verify_rs256", "jwk_missing_e", [rs, '{"kty":"RSA","n":"AQAB"}']),
        ("io.jwt.verify_rs256", "jwk_bad_b64", [rs, '{"kty":"RSA","n":"A Q","e":"AQAB"}']),
        ("io.jwt.verify_rs256", "jwk_alg", [rs, '{"kty":"oct","k":"YQ","alg":"FOO"}']),
        ("io.jwt.verify_rs256", "jwk_enc_alg", [rs, '{"kty":"oct","k":"YQ","alg":"RSA-OAEP"}']),
        ("io.jwt.verify_rs256", "jwk_kid_type", [rs, '{"kty":"oct","k":"YQ","kid":1}']),
        ("io.jwt.verify_rs256", "jwk_no_q", [rs, '{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQ"}']),
        ("io.jwt.verify_rs256", "jwks_bad", [rs, '{"keys":[{}]}']),
        ("io.jwt.verify_rs256", "jwks_object", [rs, '{"keys":{}}']),
        ("io.jwt.verify_rs256", "jwks_empty", [rs, '{"keys":[]}']),
        ("io.jwt.verify_rs256", "bad_header", [f"{b64('{')}.e30.c2ln", RSA_PEM]),
        (
            "io.jwt.verify_rs256",
            "header_alg_type",
            [token({"alg": 1}, {}, RSA_KEY, "RS256"), RSA_PEM],
        ),
        ("io.jwt.verify_rs256", "bad_sig_b64", [rs[:-1] + "*", RSA_PEM]),
        ("io.jwt.verify_rs256", "key_type", [rs, 1]),
        ("io.jwt.verify_rs256", "jwt_type", [1, RSA_PEM]),
        ("io.jwt.verify_eddsa", "pem", [ed, ED_PEM]),
        ("io.jwt.verify_eddsa", "jwk", [ed, json.dumps(ed_jwk(ED_KEY))]),
        ("io.jwt.verify_eddsa", "private_jwk", [ed, json.dumps(ed_jwk(ED_KEY, True))]),
        ("io.jwt.verify_eddsa", "wrong", [ed, pem_public(ed25519.Ed25519PrivateKey.generate())]),
        ("io.jwt.verify_es256", "ed_token", [ed, pem_public(EC_KEYS["ES256"])]),
    ]
    return cases


def _decode_verify_cases() -> list[Case]:
    t = 1_500_000_000 * 10**9
    base = {"secret": "secret", "time": t}
    name = "io.jwt.decode_verify"
    es = token({"alg": "ES256", "kid": "ec"}, {"a": 1}, EC_KEYS["ES256"])
    ed = token({"alg": "EdDSA"}, {"a": 1}, ED_KEY)
    inner = token({"alg": "RS256"}, {"sub": "in"}, RSA_KEY)
    outer = token({"alg": "RS256", "cty": "jwt"}, inner, RSA_KEY)
    cases: list[Case] = [
        (name, "ok", [hs({"iss": "me", "aud": ["a", "b"]}), base | {"iss": "me", "aud": "b"}]),
        (name, "wrong_secret", [hs({}), base | {"secret": "x"}]),
        (name, "iss_mismatch", [hs({"iss": "me"}), base | {"iss": "you"}]),
        (name, "iss_missing", [hs({}), base | {"iss": "you"}]),
        (name, "aud_unrequested", [hs({"aud": "a"}), base]),
        (name, "aud_missing", [hs({}), base | {"aud": "a"}]),
        (name, "aud_number", [hs({"aud": 5}), base | {"aud": "a"}]),
        (name, "aud_array_mixed", [hs({"aud": [1, "a"]}), base | {"aud": "a"}]),
        (name, "exp_future", [hs({"exp": 1_500_000_001}), base]),
        (name, "exp_equal", [hs({"exp": 1_500_000_000}), base]),
        (name, "exp_float", [hs({"exp": 1_500_000_000.5}), base]),
        (name, "exp_string", [hs({"exp": "1"}), base]),
        (name, "nbf_equal", [hs({"nbf": 1_500_000_000}), base]),
        (name, "nbf_future", [hs({"nbf": 1_500_000_000.001}), base]),
        (name, "nbf_string", [hs({"nbf": None}), base]),
        (name, "time_fraction", [hs({"exp": 1_500_000_000}), base | {"time": t - 0.5}]),
        (name, "time_negative", [hs({}), base | {"time": -1}]),
        (name, "time_string", [hs({}), base | {"time": "1"}]),
        (name, "time_huge", [hs({}), base | {"time": 10**400}]),
        (name, "now_default", [hs({"exp": FAR_FUTURE, "nbf": 1}), {"secret": "secret"}]),
        (name, "now_expired", [hs({"exp": 1}), {"secret": "secret"}]),
        (name, "unknown_constraint", [hs({}), base | {"zzz": 1}]),
        (name, "bad_types_sorted", [hs({}), {"aud": 1, "cert": 2, "alg": 3}]),
        (name, "cert_type", [hs({}), {"cert": 1}]),
        (name, "no_key", [hs({}), {"time": t}]),
        (name, "empty_secret", [hs({}), {"secret": ""}]),
        (name, "two_keys", [hs({}), base | {"cert": JWKS}]),
        (name, "alg_constraint", [hs({}), base | {"alg": "HS512"}]),
        (name, "alg_constraint_ok", [hs({}), base | {"alg": "HS256"}]),
        (name, "no_alg", [token({}, {}, b"secret", "HS256"), base]),
        (name, "alg_type", [token({"alg": 5}, {}, b"secret", "HS256"), base]),
        (name, "unknown_alg", [token({"alg": "XX256"}, {}, b"secret", "HS256"), base]),
        (name, "crit_empty", [hs({}, crit=[1]), base]),
        (name, "crit_type", [hs({}, crit="x"), base]),
        (name, "crit_unknown", [hs({}, crit=["x"], x=1), base]),
        (name, "crit_known", [hs({}, crit=["kid"], kid="k"), base]),
        (name, "rs_pem", [token({"alg": "RS512"}, {}, RSA_KEY), {"cert": RSA_PEM, "time": t}]),
        (name, "ps_cert", [token({"alg": "PS384"}, {}, RSA_KEY), {"cert": RSA_CERT, "time": t}]),
        (name, "jwks_kid", [es, {"cert": JWKS, "time": t}]),
        (name, "jwks_hs", [hs({"a": 1}), {"cert": JWKS, "time": t}]),
        (name, "eddsa", [ed, {"cert": ED_PEM, "time": t}]),
        (name, "secret_for_rs", [token({"alg": "RS256"}, {}, RSA_KEY), base]),
        (name, "nested", [outer, {"cert": RSA_PEM, "time": t}]),
        (name, "nested_not_jwt", [hs("plain", cty="JWT"), base]),
        (name, "payload_not_object", [hs([1]), base]),
        (name, "sections", ["a.b", base]),
        (name, "jwt_type", [5, base]),
        (name, "constraints_type", [hs({}), "x"]),
        (name, "bad_sig_b64", [hs({})[:-1] + "*", base]),
        (name, "bad_cert", [hs({}), {"cert": "x"}]),
    ]
    return cases


def _encode_cases() -> list[Case]:
    name, raw = "io.jwt.encode_sign", "io.jwt.encode_sign_raw"
    payload = {"iss": "joe", "exp": 1300819380, "s": "<&>\u2028é", "n": [1, 2.5, None, True]}
    rsa_private = rsa_jwk(RSA_KEY, True)
    cases: list[Case] = [
        (name, "hs256", [JWT_HEADER, payload, OCT]),
        (name, "hs512_extra", [{"alg": "HS512", "kid": "x", "b": {"z": 1, "a": 2}}, {}, OCT]),
        (name, "rs256", [{"alg": "RS256"}, payload, rsa_private]),
        (name, "rs512_crt", [{"alg": "RS512"}, payload, rsa_jwk(RSA_KEY, True) | {"dp": "AQ"}]),
        (name, "eddsa", [{"alg": "EdDSA"}, payload, ed_jwk(ED_KEY, True)]),
        (name, "jwks", [{"alg": "HS256"}, payload, {"keys": [OCT, rsa_private]}]),
        (name, "no_keys", [{"alg": "HS256"}, payload, {"keys": []}]),
        (name, "unknown_alg", [{"alg": "none"}, payload, OCT]),
        (name, "alg_type", [{"alg": 1}, payload, OCT]),
        (name, "no_alg", [{}, payload, OCT]),
        (name, "rs_with_oct", [{"alg": "RS256"}, payload, OCT]),
        (name, "rs_with_public", [{"alg": "RS256"}, payload, rsa_jwk(RSA_KEY)]),
        (
            name,
            "rs_no_q",
            [{"alg": "RS256"}, payload, {k: rsa_private[k] for k in ("kty", "n", "e", "d")}],
        ),
        (name, "hs_with_rsa", [{"alg": "HS256"}, payload, rsa_private]),
        (name, "es_with_rsa", [{"alg": "ES256"}, payload, rsa_private]),
        (name, "eddsa_with_ec", [{"alg": "EdDSA"}, payload, ec_jwk(EC_KEYS["ES256"], True)]),
        (name, "empty_k", [{"alg": "HS256"}, payload, {"kty": "oct", "k": ""}]),
        (name, "no_kty", [{"alg": "HS256"}, payload, {}]),
        (name, "bad_kty", [{"alg": "HS256"}, payload, {"kty": "foo"}]),
        (name, "kty_type", [{"alg": "HS256"}, payload, {"kty": 5}]),
        (
            name,
            "ec_short",
            [{"alg": "ES256"}, payload, {"kty": "EC", "crv": "P-256", "x": "YQ", "y": "YQ"}],
        ),
        (
            name,
            "ec_curve",
            [{"alg": "ES256"}, payload, {"kty": "EC", "crv": "P-2", "x": "YQ", "y": "YQ"}],
        ),
        (
            name,
            "okp_short",
            [{"alg": "EdDSA"}, payload, {"kty": "OKP", "crv": "Ed25519", "x": "YQ"}],
        ),
        (name, "rsa_zero_n", [{"alg": "RS256"}, payload, {"kty": "RSA", "n": "AA", "e": "AQAB"}]),
        (name, "rsa_even_e", [{"alg": "RS256"}, payload, {"kty": "RSA", "n": "AQAB", "e": "Ag"}]),
        (raw, "rfc", ['{"typ":"JWT",\r\n "alg":"HS256"}', '{"iss":"joe"}', json.dumps(OCT)]),
        (raw, "plain_payload", ['{"alg":"HS256","typ":"text"}', "not json", json.dumps(OCT)]),
        (raw, "jwt_payload_bad", ['{"alg":"HS256","typ":"JWT"}', "not json", json.dumps(OCT)]),
        (raw, "typ_missing_bad", ['{"alg":"HS256"}', "{", json.dumps(OCT)]),
        (raw, "typ_number", ['{"alg":"HS256","typ":1}', "[", json.dumps(OCT)]),
        (raw, "empty_header", ["", "{}", json.dumps(OCT)]),
        (raw, "header_tail", ['{"alg":"HS256"} x', "{}", json.dumps(OCT)]),
        (raw, "header_key_colon", ['{"typ:"JWT", "alg":"HS256"}', "{}", json.dumps(OCT)]),
        (raw, "header_array", ["[1]", "{}", json.dumps(OCT)]),
        (raw, "header_bad_value", ['{"alg": tru}', "{}", json.dumps(OCT)]),
        (raw, "header_bad_number", ['{"alg": -x}', "{}", json.dumps(OCT)]),
        (raw, "header_unterminated", ['{"alg": "HS256', "{}", json.dumps(OCT)]),
        (raw, "header_escaped_alg", ['{"\\u0061lg": "H\\u0053256"}', "{}", json.dumps(OCT)]),
        (raw, "header_long_tail", ['{"alg" ' + "x" * 100, "{}", json.dumps(OCT)]),
        (raw, "jwk_not_json", ['{"alg":"HS256"}', "{}", "nope"]),
        (raw, "jwk_trailing", ['{"alg":"HS256"}', "{}", json.dumps(OCT) + " x"]),
        (raw, "jwk_string", ['{"alg":"HS256"}', "{}", '"x"']),
        (raw, "jwk_null", ['{"alg":"HS256"}', "{}", "null"]),
        (raw, "jwk_padded", ['{"alg":"HS256"}', "{}", '{"kty":"oct","k":"YQ=="}']),
        (raw, "key_type", ['{"alg":"HS256"}', "{}", 5]),
        (raw, "header_type", [5, "{}", json.dumps(OCT)]),
    ]
    return cases


def _edge_cases() -> list[Case]:
    nested = hs({"sub": "inner"})
    es = token({"alg": "ES256"}, {"a": 1}, EC_KEYS["ES256"])
    es_pem = pem_public(EC_KEYS["ES256"])
    raw, sign_obj, verify = "io.jwt.encode_sign_raw", "io.jwt.encode_sign", "io.jwt.decode_verify"
    hs_header = '{"alg":"HS256"}'
    other_x = ed_jwk(ed25519.Ed25519PrivateKey.generate())["x"]
    return [
        (
            "io.jwt.decode",
            "nested_single_quotes",
            [token({"alg": "HS256", "cty": "JWT"}, f"'{nested}'")],
        ),
        (
            verify,
            "nested_mixed_case",
            [token({"alg": "HS256", "cty": "JwT"}, hs({"x": 1})), {"secret": "secret"}],
        ),
        ("io.jwt.verify_es256", "odd_signature", [es[:-3], es_pem]),
        (verify, "es_short_signature", [es[:-3], {"cert": es_pem}]),
        (
            verify,
            "aud_mixed_array",
            [hs({"aud": [1, None, "x"]}), {"secret": "secret", "aud": "x"}],
        ),
        (verify, "aud_empty_array", [hs({"aud": []}), {"secret": "secret"}]),
        (verify, "exp_bool", [hs({"exp": True}), {"secret": "secret"}]),
        (verify, "exp_big", [hs({"exp": 10**30}), {"secret": "secret"}]),
        (verify, "time_float", [hs({"exp": 2}), {"secret": "secret", "time": 1.5e9}]),
        (
            verify,
            "jwks_oct_for_rs",
            [
                token({"alg": "RS256"}, {}, RSA_KEY),
                {"cert": json.dumps({"keys": [OCT, rsa_jwk(RSA_KEY)]})},
            ],
        ),
        (raw, "duplicate_alg", ['{"alg":"HS256","alg":"none"}', "{}", json.dumps(OCT)]),
        (raw, "keys_of_strings", [hs_header, "{}", '{"keys":["x"]}']),
        (raw, "k_null", [hs_header, "{}", '{"kty":"oct","k":null}']),
        (raw, "alg_null", [hs_header, "{}", '{"kty":"oct","k":"YQ","alg":null}']),
        (raw, "k_std_base64", [hs_header, "{}", '{"kty":"oct","k":"+/+/"}']),
        (sign_obj, "okp_public", [{"alg": "EdDSA"}, {}, ed_jwk(ED_KEY)]),
        (sign_obj, "okp_wrong_x", [{"alg": "EdDSA"}, {}, ed_jwk(ED_KEY, True) | {"x": other_x}]),
        (sign_obj, "rsa_bad_d", [{"alg": "RS256"}, {}, rsa_jwk(RSA_KEY, True) | {"d": "AQAB"}]),
        (sign_obj, "header_string", ["abc", {}, OCT]),
    ]


def _roundtrip_cases() -> list[Case]:
    """Randomised signatures (ES*, PS*) made here, verified by both implementations."""
    cases: list[Case] = []
    ctx = EvalContext(strict=True)
    encode = SPECS["io.jwt.encode_sign"].fn
    for bits in ("256", "384", "512"):
        es = encode(ctx, {"alg": f"ES{bits}"}, {"a": 1}, ec_jwk(EC_KEYS[f"ES{bits}"], True))
        ps = encode(ctx, {"alg": f"PS{bits}"}, {"a": 1}, rsa_jwk(RSA_KEY, True))
        es_pem = pem_public(EC_KEYS[f"ES{bits}"])
        cases += [
            (f"io.jwt.verify_es{bits}", "roundtrip", [es, es_pem]),
            (f"io.jwt.verify_ps{bits}", "roundtrip", [ps, RSA_PEM]),
            ("io.jwt.decode_verify", f"es{bits}_roundtrip", [es, {"cert": es_pem}]),
            ("io.jwt.decode_verify", f"ps{bits}_roundtrip", [ps, {"cert": RSA_PEM}]),
        ]
    return cases


ALL_CASES = (
    _decode_cases()
    + _verify_cases()
    + _decode_verify_cases()
    + _encode_cases()
    + _edge_cases()
    + _roundtrip_cases()
)


DETAIL_DIFFERS = {
    "pem_bad_der": "io.jwt.verify_rs256: failed to parse a PEM public key: ",
    "cert_bad_der": "io.jwt.verify_rs256: failed to parse a PEM certificate: ",
}


def evaluate(name: str, args: list[Any], now_ns: int | None = None) -> tuple[str, Any]:
    """Run a builtin the way the host does: ('ok', value) or ('error', code, message)."""
    ctx = EvalContext(strict=True) if now_ns is None else EvalContext(strict=True, now_ns=now_ns)
    try:
        return "ok", SPECS[name].fn(ctx, *args)
    except BuiltinError as exc:
        message = f"{name}: {exc.message}" if exc.prefix else exc.message
        return "error", (exc.code, message)


def run_opa(cases: list[Case], directory: Path) -> dict[str, tuple[str, Any]]:
    """Evaluate every case in one ``opa eval`` run; builtin errors are collected per rule.

    Arguments travel through a data file so that OPA's type checker lets ill-typed ones
    reach the builtin at run time.
    """
    lines = ["package t", ""]
    rows: dict[int, str] = {}
    data: dict[str, Any] = {}
    for index, (name, _, args) in enumerate(cases):
        key = f"c{index}"
        data[key] = args
        call = ", ".join(f"data.args.{key}[{i}]" for i in range(len(args)))
        rows[len(lines) + 1] = key
        lines.append(f"{key} := {name}({call})")
    (directory / "t.rego").write_text("\n".join(lines) + "\n")
    (directory / "args.json").write_text(json.dumps({"args": data}))
    command = [str(OPA), "eval", "--show-builtin-errors", "--format", "json"]
    command += ["-d", str(directory / "t.rego"), "-d", str(directory / "args.json"), "data.t"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    output = json.loads(proc.stdout)
    results: dict[str, tuple[str, Any]] = {}
    for row in output.get("result", [{}])[0].get("expressions", [{}])[0].get("value", {}).items():
        results[row[0]] = ("ok", row[1])
    for error in output.get("errors", []):
        results[rows[error["location"]["row"]]] = ("error", (error["code"], error["message"]))
    return results


@pytest.fixture(scope="module")
def opa_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, Any]]:
    """OPA's outcome for every differential case."""
    if not OPA.exists():
        pytest.skip("pinned opa binary not available")
    return run_opa(ALL_CASES, tmp_path_factory.mktemp("jwt"))


def _json_like(value: Any) -> Any:
    if isinstance(value, RegoSet):
        return [_json_like(v) for v in value]
    if isinstance(value, list):
        return [_json_like(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_like(v) for k, v in value.items()}
    return value


@pytest.mark.differential
@pytest.mark.parametrize(
    ("index", "name", "label"),
    [(i, name, label) for i, (name, label, _) in enumerate(ALL_CASES)],
    ids=[f"{name.removeprefix('io.jwt.')}-{label}" for name, label, _ in ALL_CASES],
)
def test_matches_opa(
    opa_results: dict[str, tuple[str, Any]], index: int, name: str, label: str
) -> None:
    args = json.loads(json.dumps(ALL_CASES[index][2]))
    expected = opa_results.get(f"c{index}", ("undefined", None))
    kind, value = evaluate(name, args)
    assert kind == expected[0], (value, expected)
    if kind == "ok":
        assert rego_equal(_json_like(value), expected[1]), (value, expected[1])
    elif label in DETAIL_DIFFERS:
        # Go's ASN.1/X.509 diagnostics for malformed DER are not reproduced: only the
        # message up to OPA's own wording is compared.
        prefix = DETAIL_DIFFERS[label]
        assert value[0] == expected[1][0]
        assert value[1].startswith(prefix) and expected[1][1].startswith(prefix)
    else:
        assert value == expected[1]


# --- unit tests ---------------------------------------------------------------------------


def test_declarations() -> None:
    assert len(SPECS) == 17
    assert SPECS["io.jwt.decode_verify"].arity == 2
    assert SPECS["io.jwt.encode_sign"].arity == 3
    assert not SPECS["io.jwt.encode_sign_raw"].deterministic
    assert SPECS["io.jwt.verify_hs256"].deterministic


def test_operand_errors_are_type_errors() -> None:
    ctx = EvalContext(strict=True)
    with pytest.raises(OperandError, match="operand 1 must be string but got number"):
        SPECS["io.jwt.decode"].fn(ctx, 1)
    with pytest.raises(OperandError, match="operand 2 must be object but got string"):
        SPECS["io.jwt.decode_verify"].fn(ctx, "a.b.c", "x")
    with pytest.raises(OperandError, match="operand 3 must be string but got number"):
        SPECS["io.jwt.encode_sign_raw"].fn(ctx, 1, 2, 3)


def test_decode_verify_uses_context_time() -> None:
    jwt = hs({"exp": 1_700_000_001, "nbf": 1_700_000_000})
    verify: Callable[..., Any] = SPECS["io.jwt.decode_verify"].fn
    ok = verify(EvalContext(now_ns=NOW_NS), jwt, {"secret": "secret"})
    assert ok == [True, {"alg": "HS256"}, {"exp": 1_700_000_001, "nbf": 1_700_000_000}]
    late = verify(EvalContext(now_ns=NOW_NS + 10**9), jwt, {"secret": "secret"})
    assert late == [False, {}, {}]


@pytest.mark.parametrize("alg", ["HS256", "HS384", "RS256", "RS512", "EdDSA"])
def test_deterministic_signatures(alg: str) -> None:
    key = {"HS": OCT, "RS": rsa_jwk(RSA_KEY, True), "Ed": ed_jwk(ED_KEY, True)}[alg[:2]]
    encode = SPECS["io.jwt.encode_sign"].fn
    first = encode(EvalContext(), {"alg": alg}, {"a": 1}, key)
    assert first == encode(EvalContext(), {"alg": alg}, {"a": 1}, key)
    secret_key = {"HS": b"secret", "RS": RSA_KEY, "Ed": ED_KEY}[alg[:2]]
    assert first == token({"alg": alg}, {"a": 1}, secret_key)


def test_encode_sign_marshals_like_go() -> None:
    jwt = SPECS["io.jwt.encode_sign"].fn(
        EvalContext(),
        {"alg": "HS256"},
        {"b": RegoSet(["y", "x"]), "a": "<é>", 2: 1.0, ("k",): 0.5},
        OCT,
    )
    payload = base64.urlsafe_b64decode(jwt.split(".")[1] + "==")
    assert payload == '{"2":1,"[\\"k\\"]":0.5,"a":"\\u003cé\\u003e","b":["x","y"]}'.encode()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("YQ", None),
        ("YQ=", "illegal base64 data at input byte 3"),
        ("Y", "illegal base64url string: Y"),
        ("YQ==YQ==", "illegal base64 data at input byte 4"),
        ("YW\r\nJj", "illegal base64 data at input byte 6"),
        ("YWJj\r\n", "illegal base64 data at input byte 6"),
        ("YWJj", None),
        ("Y$Jj", "illegal base64 data at input byte 1"),
    ],
)
def test_base64url_like_go(text: str, message: str | None) -> None:
    if message is None:
        assert jwtmod._b64url_decode(text.encode()) in (b"a", b"abc")
    else:
        with pytest.raises(BuiltinError) as info:
            jwtmod._b64url_decode(text.encode())
        assert info.value.message == message


def _pem(data: bytes) -> tuple[str, bytes, bytes] | None:
    """The first PEM block as the JWT key reader sees it: (type, bytes, rest), or None."""
    block, rest = pem_decode(data)
    return None if block is None else (block.type, block.bytes, rest)


def test_pem_decode_like_go() -> None:
    body = "-----BEGIN X-----\nYWJj\n-----END X-----\n"
    assert _pem(body.encode()) == ("X", b"abc", b"")
    assert _pem(("junk\n" + body + "tail").encode()) == ("X", b"abc", b"tail")
    assert _pem(b"-----BEGIN X-----\nYWJj\n-----END Y-----\n") is None
    with_headers = "-----BEGIN X-----\nProc-Type: 4\n\nYWJj\n-----END X-----"
    assert _pem(with_headers.encode()) == ("X", b"abc", b"")
