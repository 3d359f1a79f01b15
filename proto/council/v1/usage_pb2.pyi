from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UsageEvent(_message.Message):
    __slots__ = ("event_id", "timestamp_ns", "tenant", "feature", "subject", "allowed", "decision_id", "quantity", "unit", "source", "attributes_json")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_NS_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_JSON_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    timestamp_ns: int
    tenant: str
    feature: str
    subject: str
    allowed: bool
    decision_id: str
    quantity: float
    unit: str
    source: str
    attributes_json: bytes
    def __init__(self, event_id: _Optional[str] = ..., timestamp_ns: _Optional[int] = ..., tenant: _Optional[str] = ..., feature: _Optional[str] = ..., subject: _Optional[str] = ..., allowed: _Optional[bool] = ..., decision_id: _Optional[str] = ..., quantity: _Optional[float] = ..., unit: _Optional[str] = ..., source: _Optional[str] = ..., attributes_json: _Optional[bytes] = ...) -> None: ...

class ReportUsageRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[UsageEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[UsageEvent, _Mapping]]] = ...) -> None: ...

class ReportUsageResponse(_message.Message):
    __slots__ = ("acknowledged",)
    ACKNOWLEDGED_FIELD_NUMBER: _ClassVar[int]
    acknowledged: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, acknowledged: _Optional[_Iterable[str]] = ...) -> None: ...
