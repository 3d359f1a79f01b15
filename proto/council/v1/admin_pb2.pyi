from google.protobuf import descriptor_pb2 as _descriptor_pb2
from proto.council.v1 import posture_pb2 as _posture_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
REQUIRED_SCOPE_FIELD_NUMBER: _ClassVar[int]
required_scope: _descriptor.FieldDescriptor

class CreateApiKeyRequest(_message.Message):
    __slots__ = ("subject", "tenant", "scopes", "device_id")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    subject: str
    tenant: str
    scopes: _containers.RepeatedScalarFieldContainer[str]
    device_id: str
    def __init__(self, subject: _Optional[str] = ..., tenant: _Optional[str] = ..., scopes: _Optional[_Iterable[str]] = ..., device_id: _Optional[str] = ...) -> None: ...

class CreateApiKeyResponse(_message.Message):
    __slots__ = ("api_key", "key_id")
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    api_key: str
    key_id: str
    def __init__(self, api_key: _Optional[str] = ..., key_id: _Optional[str] = ...) -> None: ...

class RevokeApiKeyRequest(_message.Message):
    __slots__ = ("key_id",)
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    def __init__(self, key_id: _Optional[str] = ...) -> None: ...

class RevokeApiKeyResponse(_message.Message):
    __slots__ = ("key_id",)
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    def __init__(self, key_id: _Optional[str] = ...) -> None: ...

class EnrollClientRequest(_message.Message):
    __slots__ = ("spiffe_id", "tenant", "scopes", "device_id")
    SPIFFE_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    spiffe_id: str
    tenant: str
    scopes: _containers.RepeatedScalarFieldContainer[str]
    device_id: str
    def __init__(self, spiffe_id: _Optional[str] = ..., tenant: _Optional[str] = ..., scopes: _Optional[_Iterable[str]] = ..., device_id: _Optional[str] = ...) -> None: ...

class EnrollClientResponse(_message.Message):
    __slots__ = ("spiffe_id",)
    SPIFFE_ID_FIELD_NUMBER: _ClassVar[int]
    spiffe_id: str
    def __init__(self, spiffe_id: _Optional[str] = ...) -> None: ...

class RotateSigningKeyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RotateSigningKeyResponse(_message.Message):
    __slots__ = ("kid", "verifying_kids")
    KID_FIELD_NUMBER: _ClassVar[int]
    VERIFYING_KIDS_FIELD_NUMBER: _ClassVar[int]
    kid: str
    verifying_kids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kid: _Optional[str] = ..., verifying_kids: _Optional[_Iterable[str]] = ...) -> None: ...

class SetQuotaRequest(_message.Message):
    __slots__ = ("tenant", "feature", "soft_limit", "hard_limit", "unit")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    SOFT_LIMIT_FIELD_NUMBER: _ClassVar[int]
    HARD_LIMIT_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    feature: str
    soft_limit: float
    hard_limit: float
    unit: str
    def __init__(self, tenant: _Optional[str] = ..., feature: _Optional[str] = ..., soft_limit: _Optional[float] = ..., hard_limit: _Optional[float] = ..., unit: _Optional[str] = ...) -> None: ...

class GetQuotaRequest(_message.Message):
    __slots__ = ("tenant", "feature")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    feature: str
    def __init__(self, tenant: _Optional[str] = ..., feature: _Optional[str] = ...) -> None: ...

class Quota(_message.Message):
    __slots__ = ("tenant", "feature", "soft_limit", "hard_limit", "unit", "updated_at_ns", "updated_by")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    SOFT_LIMIT_FIELD_NUMBER: _ClassVar[int]
    HARD_LIMIT_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_BY_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    feature: str
    soft_limit: float
    hard_limit: float
    unit: str
    updated_at_ns: int
    updated_by: str
    def __init__(self, tenant: _Optional[str] = ..., feature: _Optional[str] = ..., soft_limit: _Optional[float] = ..., hard_limit: _Optional[float] = ..., unit: _Optional[str] = ..., updated_at_ns: _Optional[int] = ..., updated_by: _Optional[str] = ...) -> None: ...

class ListDevicesRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class ListDevicesResponse(_message.Message):
    __slots__ = ("devices",)
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[_posture_pb2.PostureStatus]
    def __init__(self, devices: _Optional[_Iterable[_Union[_posture_pb2.PostureStatus, _Mapping]]] = ...) -> None: ...

class GetUsageRequest(_message.Message):
    __slots__ = ("tenant", "feature", "since_ns", "until_ns")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    SINCE_NS_FIELD_NUMBER: _ClassVar[int]
    UNTIL_NS_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    feature: str
    since_ns: int
    until_ns: int
    def __init__(self, tenant: _Optional[str] = ..., feature: _Optional[str] = ..., since_ns: _Optional[int] = ..., until_ns: _Optional[int] = ...) -> None: ...

class UsageCount(_message.Message):
    __slots__ = ("tenant", "feature", "unit", "events", "allowed", "denied", "quantity")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    DENIED_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    feature: str
    unit: str
    events: int
    allowed: int
    denied: int
    quantity: float
    def __init__(self, tenant: _Optional[str] = ..., feature: _Optional[str] = ..., unit: _Optional[str] = ..., events: _Optional[int] = ..., allowed: _Optional[int] = ..., denied: _Optional[int] = ..., quantity: _Optional[float] = ...) -> None: ...

class GetUsageResponse(_message.Message):
    __slots__ = ("counts",)
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    counts: _containers.RepeatedCompositeFieldContainer[UsageCount]
    def __init__(self, counts: _Optional[_Iterable[_Union[UsageCount, _Mapping]]] = ...) -> None: ...
