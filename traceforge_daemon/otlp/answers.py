"""What ``POST /v1/traces`` answers, as the OTLP/HTTP specification says: an
``ExportTraceServiceResponse`` (with a partial success naming the rejected spans) on
success, a ``google.rpc.Status`` for an error, each in the request's encoding.

``google.rpc.Status`` is not in opentelemetry-proto; rather than depend on the
googleapis protos for one message, it is declared here through protobuf's descriptor
API in a pool of our own (the wire format is the same: code = 1, message = 2).
"""

from __future__ import annotations

from typing import Optional

import msgspec
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from .values import to_json_dict

INVALID_ARGUMENT, UNAVAILABLE = 3, 14  # google.rpc.Code


def _status_class():
    file = descriptor_pb2.FileDescriptorProto(name="traceforge/rpc_status.proto",
                                              package="google.rpc", syntax="proto3")
    message = file.message_type.add(name="Status")
    message.field.add(name="code", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
                      label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    message.field.add(name="message", number=2,
                      type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                      label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status"))


Status = _status_class()


def status(code: int, message: str, json: bool) -> bytes:
    if json:
        return msgspec.json.encode({"code": code, "message": message})
    return Status(code=code, message=message).SerializeToString()


def success(rejected: int, message: Optional[str], json: bool) -> bytes:
    response = trace_service_pb2.ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message or ""
    if json:
        return msgspec.json.encode(to_json_dict(response))
    return response.SerializeToString()
