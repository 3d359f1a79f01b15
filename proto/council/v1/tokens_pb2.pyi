from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class ExchangeRequest(_message.Message):
    __slots__ = ("scopes", "audience", "lifetime_seconds", "bind_to_certificate")
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    LIFETIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BIND_TO_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    scopes: _containers.RepeatedScalarFieldContainer[str]
    audience: str
    lifetime_seconds: int
    bind_to_certificate: bool
    def __init__(self, scopes: _Optional[_Iterable[str]] = ..., audience: _Optional[str] = ..., lifetime_seconds: _Optional[int] = ..., bind_to_certificate: _Optional[bool] = ...) -> None: ...

class ExchangeResponse(_message.Message):
    __slots__ = ("access_token", "token_type", "expires_in", "expires_at", "scopes", "audience")
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_TYPE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    token_type: str
    expires_in: int
    expires_at: int
    scopes: _containers.RepeatedScalarFieldContainer[str]
    audience: str
    def __init__(self, access_token: _Optional[str] = ..., token_type: _Optional[str] = ..., expires_in: _Optional[int] = ..., expires_at: _Optional[int] = ..., scopes: _Optional[_Iterable[str]] = ..., audience: _Optional[str] = ...) -> None: ...

class JwksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class JwksResponse(_message.Message):
    __slots__ = ("jwks_json",)
    JWKS_JSON_FIELD_NUMBER: _ClassVar[int]
    jwks_json: bytes
    def __init__(self, jwks_json: _Optional[bytes] = ...) -> None: ...
