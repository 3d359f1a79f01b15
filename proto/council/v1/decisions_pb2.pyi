from google.rpc import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DecideRequest(_message.Message):
    __slots__ = ("entrypoint", "input_json", "request_id")
    ENTRYPOINT_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    entrypoint: str
    input_json: bytes
    request_id: str
    def __init__(self, entrypoint: _Optional[str] = ..., input_json: _Optional[bytes] = ..., request_id: _Optional[str] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("allow", "reasons", "obligations_json", "decision_id", "policy_revision", "result_json", "error")
    ALLOW_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    OBLIGATIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_REVISION_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    allow: bool
    reasons: _containers.RepeatedScalarFieldContainer[str]
    obligations_json: bytes
    decision_id: str
    policy_revision: str
    result_json: bytes
    error: _status_pb2.Status
    def __init__(self, allow: _Optional[bool] = ..., reasons: _Optional[_Iterable[str]] = ..., obligations_json: _Optional[bytes] = ..., decision_id: _Optional[str] = ..., policy_revision: _Optional[str] = ..., result_json: _Optional[bytes] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...

class DecideBatchRequest(_message.Message):
    __slots__ = ("entrypoint", "items")
    ENTRYPOINT_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    entrypoint: str
    items: _containers.RepeatedCompositeFieldContainer[DecideRequest]
    def __init__(self, entrypoint: _Optional[str] = ..., items: _Optional[_Iterable[_Union[DecideRequest, _Mapping]]] = ...) -> None: ...

class DecideBatchResponse(_message.Message):
    __slots__ = ("decisions",)
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    decisions: _containers.RepeatedCompositeFieldContainer[Decision]
    def __init__(self, decisions: _Optional[_Iterable[_Union[Decision, _Mapping]]] = ...) -> None: ...
