"""The edge: the HTTP protocol (head cap), request ids, body limits and parsing, how responses and errors are sent."""

from runinfra_gateway.edge.asgi import ASGIApp, Message, Receive, Scope, Send
from runinfra_gateway.edge.body import check_content_type, parse_json_object, read_body
from runinfra_gateway.edge.http_protocol import BODY_TIMED_OUT, MAX_HEAD_BYTES, GatewayHttpProtocol
from runinfra_gateway.edge.request_id import client_request_id, new_request_id
from runinfra_gateway.edge.responses import JSON, send_bytes, send_error, send_json

__all__ = [
    "BODY_TIMED_OUT",
    "JSON",
    "MAX_HEAD_BYTES",
    "ASGIApp",
    "GatewayHttpProtocol",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "check_content_type",
    "client_request_id",
    "new_request_id",
    "parse_json_object",
    "read_body",
    "send_bytes",
    "send_error",
    "send_json",
]
