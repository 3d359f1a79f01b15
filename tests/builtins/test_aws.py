"""Tests for ``providers.aws.sign_req`` (OPA's AWS SigV4 signing)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from typing import Any

import pytest

from council.opa_tool import TOOL_DIR
from pdp.builtins.aws import providers_aws_sign_req
from pdp.builtins.base import BuiltinError, EvalContext, OperandError
from pdp.values import RegoSet, encode, rego_equal

OPA = TOOL_DIR / "opa"
CTX = EvalContext()
CONFIG = {
    "aws_access_key": "AKIDEXAMPLE",
    "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    "aws_service": "s3",
    "aws_region": "eu-west-1",
}


def test_known_signature() -> None:
    """A signature computed by OPA 1.22.3 for the same request."""
    request = {
        "method": "PUT",
        "url": "https://bucket.s3.amazonaws.com/my%20key/obj.txt?versionId=3",
        "headers": {"Content-Type": "text/plain", "User-Agent": "ua"},
        "raw_body": "hello world",
    }
    config = {**CONFIG, "aws_session_token": "SESSION"}
    signed = providers_aws_sign_req(CTX, request, config, 1700000000123456789)
    assert signed == {
        **request,
        "headers": {
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/eu-west-1/s3/"
            "aws4_request,SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;"
            "x-amz-security-token,Signature="
            "db4e8cf26e44fbc749093a131978cab574e16075eeeed90f48f27da008518ed1",
            "Content-Type": "text/plain",
            "User-Agent": "ua",
            "host": "bucket.s3.amazonaws.com",
            "x-amz-content-sha256": (
                "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
            ),
            "x-amz-date": "20231114T221320Z",
            "x-amz-security-token": "SESSION",
        },
    }


def test_payload_hash_of_body_and_unsigned_payload() -> None:
    request = {"method": "get", "url": "http://example.com", "body": {"b": RegoSet([2, 1])}}
    signed = providers_aws_sign_req(CTX, request, CONFIG, 0)
    # The body is hashed as Go marshals it: {"b":[1,2]}.
    assert signed["headers"]["x-amz-content-sha256"] == hashlib.sha256(b'{"b":[1,2]}').hexdigest()
    unsigned = providers_aws_sign_req(CTX, request, {**CONFIG, "disable_payload_signing": True}, 0)
    assert unsigned["headers"]["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    other = providers_aws_sign_req(CTX, request, {**CONFIG, "aws_service": "lambda"}, 0)
    assert "x-amz-content-sha256" not in other["headers"]
    assert other["body"] == request["body"]


@pytest.mark.parametrize(
    ("request_", "config", "when", "error", "message"),
    [
        ({}, CONFIG, 0, OperandError,
         'operand 1 missing required request parameters(s): {"method", "url"}'),
        ({"method": "get", "url": "u", "x": 1}, CONFIG, 0, OperandError,
         'operand 1 invalid request parameters(s): {"x"}'),
        ({"method": RegoSet(), "url": 1}, CONFIG, 0, OperandError,
         'operand 1 invalid values for required request parameters(s): {"method", "url"}'),
        ({"method": "get", "url": "u"}, {"example": 1}, 0, OperandError,
         "operand 2 missing required AWS config parameters(s): "
         '{"aws_access_key", "aws_region", "aws_secret_access_key", "aws_service"}'),
        ({"method": "get", "url": "u"}, {**CONFIG, "aws_region": 5}, 0, OperandError,
         'operand 2 invalid values for required AWS config parameters(s): {"aws_region"}'),
        ({"method": "get", "url": "u"}, {**CONFIG, "disable_payload_signing": "false"}, 0,
         OperandError, "operand 2 invalid value for 'disable_payload_signing' in AWS config"),
        ({"method": "get", "url": "u"}, CONFIG, -1e9, OperandError,
         "operand 3 could not convert time_ns value into a unix timestamp"),
        ({"method": "get", "url": "u"}, CONFIG, 1 << 63, OperandError,
         "operand 3 could not convert time_ns value into a unix timestamp"),
        ({"method": "get", "url": "u"}, CONFIG, "0", OperandError,
         "operand 1 must be number but got string"),
        ({"method": "get", "url": "u"}, [], 0, OperandError,
         "operand 1 must be object but got array"),
        ({"method": "get", "url": "u", "headers": []}, CONFIG, 0, OperandError,
         "operand 0 must be object but got array"),
        ({"method": "get", "url": "http://[::1"}, CONFIG, 0, BuiltinError,
         "parse \"http://[::1\": missing ']' in host"),
    ],
)  # fmt: skip
def test_errors(request_: Any, config: Any, when: Any, error: type, message: str) -> None:
    with pytest.raises(error) as info:
        providers_aws_sign_req(CTX, request_, config, when)
    assert type(info.value) is error
    assert info.value.message == message


# --- differential ----------------------------------------------------------------------

_CASES: list[tuple[Any, Any, Any]] = [
    ({"method": "get", "url": "http://example.com"}, CONFIG, 1451311705000000000),
    (
        {
            "method": "GET",
            "url": "https://example.com/a b/c%2Fd/ü?x=1&y=a%20b#frag",
            "headers": {"Foo": "bar", "User-Agent": "x", "Authorization": "y", "HOST": "h"},
        },
        CONFIG,
        1451311705000000000,
    ),
    (
        {"method": "post", "url": "https://example.com:8443/p", "body": {"z": 1, "a": ["<&>"]}},
        {**CONFIG, "aws_service": "execute-api", "aws_session_token": "TOK"},
        0,
    ),
    (
        {"method": "post", "url": "https://example.com/", "raw_body": "hi", "body": {"x": 1}},
        {**CONFIG, "aws_service": "glacier", "disable_payload_signing": True},
        -1,
    ),
    ({"method": "get", "url": "https://u:p@[::1]:80/x"}, {**CONFIG, "aws_session_token": 5}, 7),
    ({"method": "get", "url": "http://e.com", "headers": {"x-amz-date": "o", "a": 1}}, CONFIG, 1),
    ({"method": "get", "url": "http://e.com/x?", "headers": {"X-Amzn-Trace-Id": "t"}}, CONFIG, 1),
    ({"method": "get", "url": "http://[::1"}, CONFIG, 1),
    ({"method": 1, "url": 2}, CONFIG, 1),
    ({"method": "get", "url": "x"}, CONFIG, 1.5),
]


@pytest.mark.differential
def test_agrees_with_opa_eval() -> None:
    if not OPA.exists():
        pytest.skip("pinned opa binary not installed")
    # One opa eval per case: strict mode stops at the first error.
    mismatches = []
    for request, config, when in _CASES:
        query = f"providers.aws.sign_req(input.r, input.c, {encode(when)})"
        command = [str(OPA), "eval", "--strict-builtin-errors", "--format", "json"]
        proc = subprocess.run(
            [*command, "--stdin-input", query],
            input=json.dumps({"r": request, "c": config}),
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        output = json.loads(proc.stdout)
        if "errors" in output:
            theirs: Any = ("error", output["errors"][0]["code"], output["errors"][0]["message"])
        else:
            theirs = ("ok", output["result"][0]["expressions"][0]["value"])
        try:
            ours: Any = ("ok", providers_aws_sign_req(CTX, request, config, when))
        except BuiltinError as exc:
            ours = ("error", exc.code, f"providers.aws.sign_req: {exc.message}")
        same = ours == theirs if ours[0] == "error" else rego_equal(ours[1], theirs[1])
        if not same:
            mismatches.append(f"{request!r}:\n  opa:  {theirs!r}\n  ours: {ours!r}")
    assert not mismatches, "\n".join(mismatches)
