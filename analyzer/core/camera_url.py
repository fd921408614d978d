"""What a live camera's URL may show in logs, and why its stream does not open.

Camera URLs carry credentials (``rtsp://admin:secret@10.0.0.12/stream1``),
and the capture stage's lines go to the log, the ZeroMQ ``status`` feed and
the report, further than the box: :func:`without_password` is the only form
they show. When OpenCV cannot open a stream it says nothing about why, so
:func:`why_it_does_not_open` asks the camera's server the way a player does
(name lookup, connection, one ``DESCRIBE`` or ``GET``), which tells a wrong
address, a wrong port, a wrong path and wrong credentials apart.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import re
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}
_MAX_HEADER_BYTES = 16384


SERVER_SCHEMES = ("rtsp", "rtsps", "http", "https", "rtmp")  # the camera is a server: the URL must name it


def names_no_server(source: str) -> bool:
    """A camera URL without a host (``rtsp://``, ``http:///mjpeg``): it can never open, however long one retries."""
    parts = urlsplit(source.strip())
    return parts.scheme.lower() in SERVER_SCHEMES and not parts.hostname


def without_password(source: str) -> str:
    """``source`` with a URL's password replaced by ``***`` (anything else unchanged).

    A password holding an unencoded ``#``, ``/`` or ``?`` ends the URL's
    address early, so no parser finds it; it is masked up to the last ``@``
    all the same (better a bit of path hidden by mistake than a password in
    the log).
    """
    cut = _credentials_cut(source)
    if cut is not None:
        return f"{cut.scheme}://{cut.user}:***@{cut.after}"
    parts = urlsplit(source)
    if not parts.scheme or parts.password is None:
        return source
    credentials, _, host = parts.netloc.rpartition("@")  # the last @: a password may hold one
    return urlunsplit(parts._replace(netloc=f"{credentials.partition(':')[0]}:***@{host}"))


_ENDS_THE_ADDRESS = "/?#"  # RFC 3986: a URL's user:password@host:port ends at the first of these


@dataclass(frozen=True)
class _CutCredentials:
    """``scheme://user:password@after`` whose password (or user) holds a character that ends the address."""

    scheme: str
    user: str
    password: str
    after: str  # everything after the last @
    character: str  # the first of #, / or ? in user:password


def _credentials_cut(source: str) -> _CutCredentials | None:
    """A URL whose user:password holds ``#``, ``/`` or ``?``, so its address seems to end inside it; else None.

    Only when what comes before the last ``@`` has a ``:`` and, unless the
    character is ``#``, no ``@`` before it (``rtsp://admin:p#ss@10.0.0.12/``):
    an ``@`` in a path or query (``http://cam/snap@2x.jpg``,
    ``rtsp://admin:pw@cam/live?notify=a@b``) stays the path's, but a camera
    URL's fragment is never sent, so one holding an ``@`` is a password's end.
    """
    scheme, separator, rest = source.partition("://")
    credentials, at, after = rest.rpartition("@")
    cut = next((index for index, character in enumerate(credentials) if character in _ENDS_THE_ADDRESS), None)
    if not separator or not at or cut is None or ":" not in credentials:
        return None
    if "@" in credentials[:cut] and credentials[cut] != "#":
        return None
    user, _, password = credentials.partition(":")
    return _CutCredentials(scheme, user, password, after, credentials[cut])


def credentials_need_encoding(source: str) -> str | None:
    """What to do about a camera URL whose password holds ``#``, ``/`` or ``?``; None if fine.

    OpenCV, FFmpeg and any URL parser end the address at the first of them
    (``rtsp://admin:p#ss@10.0.0.12/`` asks host ``admin``, port ``p``), so
    such a camera never opens, whatever the retries; written percent-encoded
    (``p%23ss``) it does. Not said of what reads as a host and port then a
    path (``host:554/path?x=a@b``) or as a host then a path (the character
    before the ``:``): those may be right, and open or fail on their own.
    """
    cut = _credentials_cut(source)
    if cut is None or cut.character in cut.user or cut.password.partition(cut.character)[0].isdigit():
        return None
    return (
        f"its password holds '{cut.character}', which ends a URL's address; "
        f"write it percent-encoded: '{cut.character}' as %{ord(cut.character):02X}"
    )


@dataclass(frozen=True)
class _Reply:
    status: int
    reason: str
    challenge: str  # the WWW-Authenticate header, "" if none
    content_type: str


def why_it_does_not_open(source: str, timeout_s: float) -> str | None:
    """One clause saying why a live URL will not play, or None for a scheme it cannot ask (rtmp, udp)."""
    parts = urlsplit(source)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        return f"the port in {without_password(source)} is not a port number (1-65535); write host:port, e.g. :554"
    address = f"[{parts.hostname}]:{port}" if ":" in parts.hostname else f"{parts.hostname}:{port}"  # IPv6
    try:
        socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return f"the host name {parts.hostname} is not found (DNS); check the camera's address"
    try:
        reply = _ask(parts, scheme, port, timeout_s)
    except ConnectionRefusedError:
        return f"nothing listens on {address} (connection refused); check the port and that the camera's server is on"
    except TimeoutError:
        return f"no answer from {address} within {timeout_s:g} s; check that the camera is on and reachable"
    except ssl.SSLError as error:
        return (
            f"{address} failed the TLS handshake ({error.reason or error}); check the scheme (rtsps/https) and the port"
        )
    except OSError as error:
        return f"cannot reach {address} ({error.strerror or error}); check the network and the camera's address"
    except _NotThisProtocolError:
        return f"{address} answers, but not as an {scheme.upper()} server; check the scheme and the port"
    return _explain(reply, parts)


class _NotThisProtocolError(Exception):
    """The server's first line is not a status line of the protocol asked."""


def _explain(reply: _Reply, parts: SplitResult) -> str:
    status = f"{reply.status} {reply.reason}".strip()
    if reply.status == 401 and parts.username is None:
        return (
            f"the camera wants a user name and password ({status}); put them in the URL: scheme://user:password@host/…"
        )
    if reply.status == 401:
        return f"the camera refused the user name or password ({status}); check them"
    if reply.status == 403:
        return f"the camera refuses this client or stream ({status}); check the user's rights on the camera"
    if reply.status == 404:
        return f"no stream at {parts.path or '/'} ({status}); check the stream path in the camera's manual"
    if reply.status >= 400:
        return f"the camera answered {status}"
    if reply.content_type.startswith("text/html"):
        return "this address is a web page (text/html), not a video stream; use the stream URL from the camera's manual"
    if parts.scheme.lower().startswith("rtsp"):
        return "the camera accepts this URL, but its video would not start; check the stream's codec and settings"
    return (
        f"the server answers ({status}, {reply.content_type or 'no content type'}), but with no video OpenCV can play"
    )


def _ask(parts: SplitResult, scheme: str, port: int, timeout_s: float) -> _Reply:
    """The server's answer to a request for the stream, with the URL's credentials if it asks for them."""
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    reply = _request(parts, scheme, port, timeout_s, authorization="")
    if reply.status == 401 and parts.username is not None and reply.challenge:
        method = "DESCRIBE" if scheme.startswith("rtsp") else "GET"
        uri = _request_uri(parts, scheme, port) if scheme.startswith("rtsp") else _path(parts)
        reply = _request(parts, scheme, port, timeout_s, _authorization(reply.challenge, method, uri, user, password))
    return reply


def _path(parts: SplitResult) -> str:
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _request_uri(parts: SplitResult, scheme: str, port: int) -> str:
    """The stream's URL without its credentials, as an RTSP request line names it."""
    host = parts.hostname if ":" not in (parts.hostname or "") else f"[{parts.hostname}]"
    return urlunsplit((scheme, f"{host}:{port}", parts.path or "/", parts.query, ""))


def _request(parts: SplitResult, scheme: str, port: int, timeout_s: float, authorization: str) -> _Reply:
    if scheme.startswith("rtsp"):
        return _rtsp_describe(parts, scheme, port, timeout_s, authorization)
    return _http_get(parts, scheme, port, timeout_s, authorization)


def _rtsp_describe(parts: SplitResult, scheme: str, port: int, timeout_s: float, authorization: str) -> _Reply:
    lines = [
        f"DESCRIBE {_request_uri(parts, scheme, port)} RTSP/1.0",
        "CSeq: 1",
        "Accept: application/sdp",
        "User-Agent: footfall-analyzer",
        *([f"Authorization: {authorization}"] if authorization else []),
    ]
    connection = socket.create_connection((parts.hostname, port), timeout=timeout_s)
    try:
        if scheme == "rtsps":
            connection = _like_ffmpeg_tls().wrap_socket(connection, server_hostname=parts.hostname)
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head and len(head) < _MAX_HEADER_BYTES:
            chunk = connection.recv(4096)
            if not chunk:
                break
            head += chunk
    finally:
        connection.close()
    status_line, _, headers = head.decode("latin-1").partition("\r\n")
    match = re.match(r"RTSP/\d\.\d (\d{3}) ?(.*)", status_line)
    if not match:
        raise _NotThisProtocolError
    fields = [
        (name.strip().lower(), value.strip())
        for name, _, value in (line.partition(":") for line in headers.split("\r\n"))
    ]
    challenges = [value for name, value in fields if name == "www-authenticate"]
    content_type = next((value for name, value in fields if name == "content-type"), "")
    return _Reply(int(match.group(1)), match.group(2).strip(), _strongest(challenges), content_type)


def _http_get(parts: SplitResult, scheme: str, port: int, timeout_s: float, authorization: str) -> _Reply:
    connection = (
        http.client.HTTPSConnection(parts.hostname, port, timeout=timeout_s, context=_like_ffmpeg_tls())
        if scheme == "https"
        else http.client.HTTPConnection(parts.hostname, port, timeout=timeout_s)
    )
    try:
        headers = {"User-Agent": "footfall-analyzer", **({"Authorization": authorization} if authorization else {})}
        connection.request("GET", _path(parts), headers=headers)
        response = connection.getresponse()  # the status and headers only: an MJPEG body never ends
        challenges = response.headers.get_all("WWW-Authenticate") or []
        return _Reply(response.status, response.reason, _strongest(challenges), response.getheader("Content-Type", ""))
    except http.client.BadStatusLine:
        raise _NotThisProtocolError from None
    finally:
        connection.close()


def _like_ffmpeg_tls() -> ssl.SSLContext:
    """TLS as FFmpeg opens the stream (no certificate check by default): cameras mostly have self-signed ones.

    Checking here would blame the certificate for a failure FFmpeg did not have.
    """
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _strongest(challenges: list[str]) -> str:
    """Digest if the server offers it (cameras often offer Basic too), else the first challenge."""
    offered = [challenge.strip() for challenge in challenges]
    return next(
        (challenge for challenge in offered if challenge.lower().startswith("digest")), offered[0] if offered else ""
    )


def _authorization(challenge: str, method: str, uri: str, user: str, password: str) -> str:
    """The ``Authorization`` value answering a Basic or Digest (MD5) challenge."""
    if not challenge.lower().startswith("digest"):
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    fields = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge[len("digest") :]))
    realm, nonce = fields.get("realm", ""), fields.get("nonce", "")

    def md5(text: str) -> str:
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    user_secret, request = md5(f"{user}:{realm}:{password}"), md5(f"{method}:{uri}")
    answer = f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}"'
    if "auth" in [option.strip() for option in fields.get("qop", "").split(",")]:
        client_nonce = os.urandom(8).hex()
        response = md5(f"{user_secret}:{nonce}:00000001:{client_nonce}:auth:{request}")
        answer += f', qop=auth, nc=00000001, cnonce="{client_nonce}"'
    else:
        response = md5(f"{user_secret}:{nonce}:{request}")
    if "opaque" in fields:
        answer += f', opaque="{fields["opaque"]}"'
    return answer + f', response="{response}", algorithm=MD5'
