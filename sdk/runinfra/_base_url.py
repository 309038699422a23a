"""Base URL rules: checked once, at construction, before a key can be sent anywhere.

A hand-written parser rather than ``urllib.parse``: the rules are stricter than RFC 3986
(no userinfo, no query or fragment, https except on local development hosts) and it keeps
``import runinfra`` free of the ``re`` module.
"""

from __future__ import annotations

from ._errors import invalid_options

TYPE_CHECKING = False  # typing is not imported at run time: it costs more startup than the whole SDK
if TYPE_CHECKING:
    from typing import Optional

__all__ = ["DEFAULT_BASE_URL", "BaseURL", "parse_base_url", "percent_encode", "scope_to_pipeline"]

DEFAULT_BASE_URL = "https://api.runinfra.ai/v1"
LOCAL_DEVELOPMENT_HOSTS = frozenset({"localhost", "127.0.0.1", "0.0.0.0", "[::1]"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HOST_LABEL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_HEX = frozenset("0123456789abcdefABCDEF")
# RFC 3986 pchar minus the percent sign (checked separately) plus "/".
_PATH_CHARS = _UNRESERVED | frozenset("!$&'()*+,;=:@/")


class BaseURL:
    """A validated base URL: the origin to connect to and the path prefix of every route."""

    __slots__ = ("host", "pipeline_segment", "port", "prefix", "scheme", "url")

    def __init__(self, scheme: str, host: str, port: int, prefix: str, pipeline_segment: Optional[str] = None) -> None:
        self.scheme = scheme
        self.host = host  # as written in a URL: IPv6 literals keep their brackets
        self.port = port
        self.prefix = prefix  # path without a trailing slash, "" for the root
        default = _DEFAULT_PORTS[scheme]
        authority = host if port == default else f"{host}:{port}"
        self.url = f"{scheme}://{authority}{prefix}"
        # the pipeline every route is scoped to: named by pipeline_id, or by a …/v1/{id} URL
        self.pipeline_segment = pipeline_segment or _pipeline_segment(prefix)

    @property
    def connect_host(self) -> str:
        """The host name or address to open a socket to (IPv6 without brackets)."""
        return self.host[1:-1] if self.host.startswith("[") else self.host

    def __repr__(self) -> str:
        return f"BaseURL({self.url!r})"


def _refuse(reason: str) -> Exception:
    return invalid_options(f"base_url is not accepted: {reason}", param="base_url")


def parse_base_url(raw: object) -> BaseURL:
    """Validate ``raw`` by the SDK's rules; raise ``invalid_request_options`` when it fails one."""
    if not isinstance(raw, str):
        raise _refuse("it must be a string")
    text = raw.strip()
    if not text:
        raise _refuse("it is blank")
    for char in text:
        if char <= " " or char >= "\x7f":
            raise _refuse("it contains whitespace, control or non-ASCII characters")
    scheme, separator, rest = text.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in _DEFAULT_PORTS:
        raise _refuse("only http:// and https:// URLs are accepted")
    if "?" in rest or "#" in rest:
        raise _refuse("query strings and fragments are not allowed")
    slash = rest.find("/")
    authority, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    if "@" in authority:
        raise _refuse("user names and passwords are not allowed in the URL")
    host, port = _parse_authority(authority, _DEFAULT_PORTS[scheme])
    if scheme == "http" and host not in LOCAL_DEVELOPMENT_HOSTS:
        raise _refuse("remote base URLs must use https (plain http is for localhost, 127.0.0.1, 0.0.0.0, [::1])")
    return BaseURL(scheme, host, port, _parse_path(path))


def _parse_authority(authority: str, default_port: int) -> tuple[str, int]:
    if not authority:
        raise _refuse("it has no host")
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise _refuse("an IPv6 address is missing its closing bracket")
        host = "[" + _parse_ipv6(authority[1:end]) + "]"
        tail = authority[end + 1 :]
        if tail and not tail.startswith(":"):
            raise _refuse("unexpected characters after the IPv6 address")
        port_text: Optional[str] = tail[1:] if tail else None
    else:
        name, colon, after = authority.partition(":")
        if ":" in after:
            raise _refuse("an IPv6 address must be written in brackets")
        host = _parse_host_name(name)
        port_text = after if colon else None
    if port_text is None:
        return host, default_port
    if not port_text.isdigit() or not port_text.isascii():
        raise _refuse("the port must be a number")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise _refuse("the port must be between 1 and 65535")
    return host, port


def _parse_host_name(name: str) -> str:
    if not name:
        raise _refuse("it has no host")
    if len(name) > 253:
        raise _refuse("the host name is too long")
    labels = name.lower().split(".")
    if all(label.isdigit() for label in labels):
        if len(labels) != 4 or any(len(label) > 3 or int(label) > 255 for label in labels):
            raise _refuse("the host is not a valid IPv4 address")
        return ".".join(str(int(label)) for label in labels)
    for label in labels:
        if not label or len(label) > 63 or label[0] == "-" or label[-1] == "-":
            raise _refuse("the host name is not valid")
        if not set(label) <= _HOST_LABEL_CHARS:
            raise _refuse("the host name is not valid")
    return ".".join(labels)


def _parse_ipv6(literal: str) -> str:
    import ipaddress  # only for bracketed hosts, which are rare

    if "%" in literal:
        raise _refuse("IPv6 zone identifiers are not supported")
    try:
        return ipaddress.IPv6Address(literal).compressed
    except ValueError:
        raise _refuse("the host is not a valid IPv6 address") from None


def _parse_path(path: str) -> str:
    index = 0
    while index < len(path):
        char = path[index]
        if char == "%":
            if len(path) < index + 3 or path[index + 1] not in _HEX or path[index + 2] not in _HEX:
                raise _refuse("the path has a malformed percent-escape")
            index += 3
            continue
        if char not in _PATH_CHARS:
            raise _refuse(f"the path contains {char!r}")
        index += 1
    if "//" in path:
        raise _refuse("the path contains an empty segment")
    stripped = path.rstrip("/")
    for segment in stripped.split("/"):
        if segment in (".", ".."):
            raise _refuse("the path contains a dot segment")
    return stripped


def _pipeline_segment(prefix: str) -> Optional[str]:
    """The pipeline a ``…/v1/{pipeline_id}`` base URL is scoped to, if it is one."""
    head, _, last = prefix.rpartition("/")
    if last and last != "v1" and head.rpartition("/")[2] == "v1":
        return last
    return None


def percent_encode(text: str) -> str:
    """Percent-encode every byte of ``text`` outside RFC 3986's unreserved set (``/`` too)."""
    if set(text) <= _UNRESERVED:
        return text
    return "".join(
        char if char in _UNRESERVED else "".join(f"%{byte:02X}" for byte in char.encode("utf-8")) for char in text
    )


def scope_to_pipeline(base: BaseURL, pipeline_id: object) -> BaseURL:
    """``base`` scoped to ``pipeline_id`` (stripped, URL-encoded), never scoped twice."""
    if pipeline_id is None:
        return base
    if not isinstance(pipeline_id, str):
        raise invalid_options("pipeline_id must be a string", param="pipeline_id")
    stripped = pipeline_id.strip()
    if not stripped:
        raise invalid_options("pipeline_id must not be blank", param="pipeline_id")
    if len(stripped) > 256:
        raise invalid_options("pipeline_id is longer than 256 characters", param="pipeline_id")
    segment = percent_encode(stripped)
    if base.pipeline_segment is not None:
        if base.pipeline_segment == segment or _unquote(base.pipeline_segment) == stripped:
            return base
        raise invalid_options(
            "pipeline_id names a different pipeline than the pipeline-scoped base_url", param="pipeline_id"
        )
    return BaseURL(base.scheme, base.host, base.port, f"{base.prefix}/{segment}", segment)


def _unquote(segment: str) -> str:
    if "%" not in segment:
        return segment
    raw = bytearray()
    index = 0
    while index < len(segment):
        if segment[index] == "%":
            raw.append(int(segment[index + 1 : index + 3], 16))
            index += 3
        else:
            raw.extend(segment[index].encode("ascii"))
            index += 1
    return raw.decode("utf-8", errors="replace")
