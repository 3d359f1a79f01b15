"""``providers.aws.sign_req``: AWS Signature Version 4 over an ``http.send`` request object.

The signature is OPA's own variant of SigV4, reproduced exactly: the canonical request uses
the method as written, Go's escaped URL path (empty for a bare host) and the raw query
string; every request header is signed (lower-cased) except ``Authorization``,
``User-Agent`` and ``X-Amzn-Trace-Id``, and request headers override the generated
``host``/``x-amz-*`` values in the signature while the returned headers carry the generated
ones. S3 and Glacier get an ``x-amz-content-sha256`` header (``UNSIGNED-PAYLOAD`` when
``disable_payload_signing`` is true).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

from pdp.builtins.base import (
    BuiltinError,
    BuiltinSpec,
    EvalContext,
    OperandError,
    number_arg,
    object_arg,
    operand_type_error,
)
from pdp.builtins.http import REQUEST_KEYS, URLParseError, go_json_marshal, parse_go_url
from pdp.builtins.runtime import rego_string
from pdp.values import RegoSet

__all__ = ["BUILTINS", "providers_aws_sign_req"]

_REQUIRED_CONFIG = ("aws_access_key", "aws_region", "aws_secret_access_key", "aws_service")
_UNSIGNED_HEADERS = frozenset({"authorization", "user-agent", "x-amzn-trace-id"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT64 = 1 << 63


def _string(value: Any) -> str:
    """OPA reads a non-string where it wants a string as the empty string."""
    return value if type(value) is str else ""


def _key_set(keys: Any) -> str:
    return rego_string(RegoSet(keys))


def _check_config(config: dict[Any, Any]) -> None:
    missing = [k for k in _REQUIRED_CONFIG if k not in config]
    if missing:
        raise OperandError(
            f"operand 2 missing required AWS config parameters(s): {_key_set(missing)}"
        )
    invalid = [k for k in _REQUIRED_CONFIG if type(config[k]) is not str]
    if invalid:
        raise OperandError(
            f"operand 2 invalid values for required AWS config parameters(s): {_key_set(invalid)}"
        )


def _check_request_keys(request: dict[Any, Any]) -> None:
    # OPA validates the request like http.send does, so any http.send option is allowed.
    invalid = [k for k in request if k not in REQUEST_KEYS]
    if invalid:
        raise OperandError(f"operand 1 invalid request parameters(s): {_key_set(invalid)}")
    missing = [k for k in ("method", "url") if k not in request]
    if missing:
        raise OperandError(f"operand 1 missing required request parameters(s): {_key_set(missing)}")


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def sign_v4(
    headers: dict[str, str],
    method: str,
    url: Any,
    body: bytes,
    *,
    service: str,
    credentials: tuple[str, str, str, str],
    when: datetime,
    unsigned_payload: bool,
) -> tuple[str, dict[str, str]]:
    """The ``Authorization`` value and the generated ``host``/``x-amz-*`` headers.

    ``credentials`` is (access key, secret key, region, session token or "").
    """
    access_key, secret_key, region, session_token = credentials
    content_sha = "UNSIGNED-PAYLOAD" if unsigned_payload else hashlib.sha256(body).hexdigest()
    date = when.strftime("%Y%m%d")
    stamp = when.strftime("%Y%m%dT%H%M%SZ")

    generated = {"host": url.host, "x-amz-date": stamp}
    if service in ("s3", "glacier"):
        generated["x-amz-content-sha256"] = content_sha
    if session_token:
        generated["x-amz-security-token"] = session_token

    to_sign = dict(generated)
    for name, value in headers.items():
        lower = name.lower()
        if lower not in _UNSIGNED_HEADERS:
            to_sign[lower] = value
    names = sorted(to_sign)
    signed_list = ";".join(names)
    canonical = "".join(
        [
            f"{method}\n{url.escaped_path()}\n{url.raw_query}\n",
            *(f"{n}:{to_sign[n]}\n" for n in names),
            f"\n{signed_list}\n{content_sha}",
        ]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = (
        f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n"
        + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    )
    key = _hmac(f"AWS4{secret_key}".encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope},"
        f"SignedHeaders={signed_list},Signature={signature}"
    )
    return authorization, generated


def providers_aws_sign_req(ctx: EvalContext, request: Any, aws_config: Any, time_ns: Any) -> Any:
    """Sign an ``http.send`` request object with AWS SigV4 at ``time_ns``; the request is
    returned with its headers extended by ``Authorization``, ``host`` and ``x-amz-*``."""
    req = object_arg(request, 1)
    config = object_arg(aws_config, 1)
    _check_config(config)

    number_arg(time_ns, 1)
    if type(time_ns) is not int or not -_INT64 <= time_ns < _INT64:
        raise OperandError("operand 3 could not convert time_ns value into a unix timestamp")
    when = _EPOCH + timedelta(seconds=time_ns // 1_000_000_000)

    _check_request_keys(req)
    headers = req.get("headers", {})
    if type(headers) is not dict:
        raise operand_type_error(0, headers, "object")
    invalid = [k for k in ("url", "method") if type(req[k]) is not str]
    if invalid:
        raise OperandError(
            f"operand 1 invalid values for required request parameters(s): {_key_set(invalid)}"
        )
    try:
        url = parse_go_url(req["url"])
    except URLParseError as exc:
        raise BuiltinError(str(exc)) from None

    if "raw_body" in req:
        body = _string(req["raw_body"]).encode("utf-8")
    elif "body" in req:
        body = go_json_marshal(req["body"])
    else:
        body = b""

    header_map = {_string(k): _string(v) for k, v in headers.items()}
    unsigned = config.get("disable_payload_signing", False)
    if type(unsigned) is not bool:
        raise OperandError("operand 2 invalid value for 'disable_payload_signing' in AWS config")

    session_token = _string(config.get("aws_session_token"))
    authorization, generated = sign_v4(
        header_map,
        req["method"],
        url,
        body,
        service=config["aws_service"],
        credentials=(
            config["aws_access_key"],
            config["aws_secret_access_key"],
            config["aws_region"],
            session_token,
        ),
        when=when,
        unsigned_payload=unsigned,
    )
    signed_headers = {**header_map, "Authorization": authorization, **generated}
    return {**req, "headers": signed_headers}


BUILTINS = (BuiltinSpec("providers.aws.sign_req", providers_aws_sign_req),)
