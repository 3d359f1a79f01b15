from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EnrollRequest(_message.Message):
    __slots__ = ("device_id", "public_key", "tenant")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    public_key: bytes
    tenant: str
    def __init__(self, device_id: _Optional[str] = ..., public_key: _Optional[bytes] = ..., tenant: _Optional[str] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("device_id", "tenant", "key_id", "created")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    tenant: str
    key_id: str
    created: bool
    def __init__(self, device_id: _Optional[str] = ..., tenant: _Optional[str] = ..., key_id: _Optional[str] = ..., created: _Optional[bool] = ...) -> None: ...

class SubmitRequest(_message.Message):
    __slots__ = ("device_id", "report_json", "signature")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    REPORT_JSON_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    report_json: bytes
    signature: bytes
    def __init__(self, device_id: _Optional[str] = ..., report_json: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class SubmitResponse(_message.Message):
    __slots__ = ("accepted", "rejection", "reasons", "status")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTION_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    rejection: str
    reasons: _containers.RepeatedScalarFieldContainer[str]
    status: PostureStatus
    def __init__(self, accepted: _Optional[bool] = ..., rejection: _Optional[str] = ..., reasons: _Optional[_Iterable[str]] = ..., status: _Optional[_Union[PostureStatus, _Mapping]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ("device_id",)
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    def __init__(self, device_id: _Optional[str] = ...) -> None: ...

class PostureStatus(_message.Message):
    __slots__ = ("device_id", "tenant", "enrolled", "reported", "fresh", "compliant", "checks", "failed", "reasons", "age_seconds", "issued_at_ms")
    class ChecksEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bool
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bool] = ...) -> None: ...
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ENROLLED_FIELD_NUMBER: _ClassVar[int]
    REPORTED_FIELD_NUMBER: _ClassVar[int]
    FRESH_FIELD_NUMBER: _ClassVar[int]
    COMPLIANT_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    tenant: str
    enrolled: bool
    reported: bool
    fresh: bool
    compliant: bool
    checks: _containers.ScalarMap[str, bool]
    failed: _containers.RepeatedScalarFieldContainer[str]
    reasons: _containers.RepeatedScalarFieldContainer[str]
    age_seconds: float
    issued_at_ms: int
    def __init__(self, device_id: _Optional[str] = ..., tenant: _Optional[str] = ..., enrolled: _Optional[bool] = ..., reported: _Optional[bool] = ..., fresh: _Optional[bool] = ..., compliant: _Optional[bool] = ..., checks: _Optional[_Mapping[str, bool]] = ..., failed: _Optional[_Iterable[str]] = ..., reasons: _Optional[_Iterable[str]] = ..., age_seconds: _Optional[float] = ..., issued_at_ms: _Optional[int] = ...) -> None: ...
