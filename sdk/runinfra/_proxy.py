"""``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` from the environment, read once per client."""

from __future__ import annotations

import os

from ._errors import invalid_options

TYPE_CHECKING = False  # typing is not imported at run time: it costs more startup than the whole SDK
if TYPE_CHECKING:
    from typing import Mapping, Optional, Tuple

__all__ = ["Proxy", "ProxySettings", "proxy_settings_from_env"]


class Proxy:
    """An ``http://`` proxy: its address and the ``Proxy-Authorization`` value, if any."""

    __slots__ = ("authorization", "host", "port")

    def __init__(self, host: str, port: int, authorization: Optional[str]) -> None:
        self.host = host
        self.port = port
        self.authorization = authorization

    def __repr__(self) -> str:
        credentials = ", with credentials" if self.authorization else ""
        return f"Proxy({self.host}:{self.port}{credentials})"


class ProxySettings:
    """Which proxy, if any, serves a given origin."""

    __slots__ = ("http", "https", "no_proxy")

    def __init__(self, http: Optional[Proxy], https: Optional[Proxy], no_proxy: Tuple[str, ...]) -> None:
        self.http = http
        self.https = https
        self.no_proxy = no_proxy

    def proxy_for(self, scheme: str, host: str, port: int) -> Optional[Proxy]:
        proxy = self.https if scheme == "https" else self.http
        if proxy is None or self._bypassed(host.strip("[]").lower(), port):
            return None
        return proxy

    def _bypassed(self, host: str, port: int) -> bool:
        for entry in self.no_proxy:
            if entry == "*":
                return True
            name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
            if entry_port and entry_port != str(port):
                continue
            name = name.strip("[]").lstrip(".")
            if host == name or host.endswith("." + name):
                return True
        return False


def _env(environ: Mapping[str, str], name: str) -> Optional[str]:
    value = environ.get(name.lower())
    if value is None and not (name == "HTTP_PROXY" and "REQUEST_METHOD" in environ):
        # CGI puts a request's "Proxy:" header in HTTP_PROXY: never trust it there.
        value = environ.get(name)
    value = value.strip() if value else None
    return value or None


def _parse_proxy(value: str, variable: str) -> Proxy:
    import base64
    from urllib.parse import unquote

    text = value if "://" in value else f"http://{value}"
    scheme, _, rest = text.partition("://")
    if scheme.lower() != "http":
        raise invalid_options(f"{variable} must be an http:// proxy URL", param=variable)
    authority = rest.split("/", 1)[0]
    userinfo, at, hostport = authority.rpartition("@")
    authorization = None
    if at:
        user, _, password = userinfo.partition(":")
        token = f"{unquote(user)}:{unquote(password)}".encode()
        authorization = "Basic " + base64.b64encode(token).decode("ascii")
    if hostport.startswith("["):
        host, _, port_text = hostport[1:].partition("]")
        port_text = port_text[1:] if port_text.startswith(":") else port_text
    else:
        host, _, port_text = hostport.partition(":")
    if not host or (port_text and not (port_text.isascii() and port_text.isdigit())):
        raise invalid_options(f"{variable} is not a valid proxy URL", param=variable)
    port = int(port_text) if port_text else 80
    if not 1 <= port <= 65535:
        raise invalid_options(f"{variable} has a port outside 1-65535", param=variable)
    return Proxy(host, port, authorization)


def proxy_settings_from_env(environ: Optional[Mapping[str, str]] = None) -> ProxySettings:
    env = os.environ if environ is None else environ
    https_value = _env(env, "HTTPS_PROXY")
    http_value = _env(env, "HTTP_PROXY")
    if https_value is None and http_value is None:
        return ProxySettings(None, None, ())
    no_proxy_value = _env(env, "NO_PROXY") or ""
    no_proxy = tuple(entry.strip().lower() for entry in no_proxy_value.split(",") if entry.strip())
    return ProxySettings(
        _parse_proxy(http_value, "HTTP_PROXY") if http_value else None,
        _parse_proxy(https_value, "HTTPS_PROXY") if https_value else None,
        no_proxy,
    )
