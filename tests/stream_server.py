"""Real live cameras for tests, on loopback.

:class:`MjpegServer` is an HTTP MJPEG camera that can die, come back, hang or
stall. It plays a video's frames on a wall clock, like a camera: a client
that connects late sees the current frame, not the first one.
:class:`RtspDoor` is an RTSP camera's front door: it asks for Digest
credentials and a stream path the way IP cameras do, and streams nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2


def jpeg_frames(video: Path, width: int = 960) -> list[bytes]:
    """Every frame of a video, scaled to ``width`` and JPEG-encoded once."""
    capture = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        height = round(image.shape[0] * width / image.shape[1])
        ok, encoded = cv2.imencode(".jpg", cv2.resize(image, (width, height)), [cv2.IMWRITE_JPEG_QUALITY, 85])
        frames.append(encoded.tobytes())
    capture.release()
    if not frames:
        raise RuntimeError(f"{video} has no frames")
    return frames


class MjpegServer:
    """``http://127.0.0.1:<port>/stream``; ``mode`` is ``serve``, ``hang`` (accept, send nothing) or ``stall``.

    In ``stall`` mode each connection gets ``stall_after`` frames and then
    silence with the socket left open: what a frozen camera looks like.
    """

    def __init__(self, frames: list[bytes], fps: float = 15.0, port: int = 0) -> None:
        self.frames = frames
        self.fps = fps
        self.mode = "serve"
        self.stall_after = 20
        self.port = port or _free_port()
        self.connections = 0
        self._epoch = time.monotonic()
        self._server: ThreadingHTTPServer | None = None
        self._clients: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        """The stream address a camera config points at."""
        return f"http://127.0.0.1:{self.port}/stream"

    def start(self) -> MjpegServer:
        """Listen (again) on the same port."""
        owner = self
        self._stopping.clear()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/stream":
                    self.send_error(404)
                    return
                with owner._lock:
                    owner.connections += 1
                    owner._clients.append(self.connection)
                if owner.mode == "hang":
                    owner._stopping.wait(600)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                sent = 0
                while not owner._stopping.is_set():
                    if owner.mode == "stall" and sent >= owner.stall_after:
                        owner._stopping.wait(600)
                        return
                    index = int((time.monotonic() - owner._epoch) * owner.fps) % len(owner.frames)
                    jpeg = owner.frames[index]
                    header = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                    try:
                        self.wfile.write(header.encode() + jpeg + b"\r\n")
                    except OSError:
                        return
                    sent += 1
                    owner._stopping.wait(1 / owner.fps)

            def log_message(self, *args: object) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="mjpeg-server", daemon=True).start()
        return self

    def stop(self) -> None:
        """Die: stop listening and cut every client off."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            for client in self._clients:
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_RDWR)
                client.close()
            self._clients.clear()


class RtspDoor:
    """``rtsp://127.0.0.1:<port>/stream1`` behind Digest authentication (RFC 2617, MD5, as most cameras ask).

    OPTIONS is always answered; DESCRIBE gets 401 with a challenge until the
    credentials are right, then 404 for any other path, then 200 with a
    stream description; SETUP is refused, so nothing ever plays.
    ``answers`` records (User-Agent, method, status) of every request.
    """

    realm = "IP Camera"
    nonce = "5f3b1a2c9d8e7f60"

    def __init__(
        self, user: str = "admin", password: str = "s3cr@t:pw", path: str = "/stream1", qop: bool = False
    ) -> None:
        self.user, self.password, self.path = user, password, path
        self.qop = qop  # ask for RFC 2617's qop="auth" variant (client nonce and count) instead of RFC 2069's
        self.answers: list[tuple[str, str, int]] = []
        self._server: socketserver.ThreadingTCPServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return self._server.server_address[1]

    def start(self) -> RtspDoor:
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while True:
                    request = self.rfile.readline().decode("latin-1").strip()
                    if not request:
                        return
                    headers = {}
                    for line in iter(lambda: self.rfile.readline().decode("latin-1").strip(), ""):
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                    method, uri = request.split()[:2]
                    status, extra, body = owner._answer(method, uri, headers)
                    owner.answers.append((headers.get("user-agent", ""), method, status))
                    reply = [f"RTSP/1.0 {status} {_REASONS[status]}", f"CSeq: {headers.get('cseq', '0')}", *extra]
                    reply.append(f"Content-Length: {len(body)}")
                    self.wfile.write(("\r\n".join(reply) + "\r\n\r\n").encode() + body)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="rtsp-door", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def url(self, user: str | None = None, password: str | None = None, path: str | None = None) -> str:
        """The door's URL with these credentials (percent-encode special characters yourself)."""
        credentials = f"{user}:{password}@" if user is not None else ""
        return f"rtsp://{credentials}127.0.0.1:{self.port}{path or self.path}"

    def _answer(self, method: str, uri: str, headers: dict[str, str]) -> tuple[int, list[str], bytes]:
        if method == "OPTIONS":
            return 200, ["Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN"], b""
        if method != "DESCRIBE":
            return 461, [], b""
        if not self._authorised(method, headers.get("authorization", "")):
            challenge = f'WWW-Authenticate: Digest realm="{self.realm}", nonce="{self.nonce}"'
            challenge += ', qop="auth"' if self.qop else ""
            return 401, [challenge, f'WWW-Authenticate: Basic realm="{self.realm}"'], b""
        if not uri.split("?")[0].endswith(self.path):
            return 404, [], b""
        return 200, ["Content-Type: application/sdp"], _SDP

    def _authorised(self, method: str, authorization: str) -> bool:
        if not authorization.lower().startswith("digest"):
            return False
        fields = dict(re.findall(r'(\w+)="?([^",]*)"?', authorization[len("digest") :]))

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        secret = md5(f"{self.user}:{self.realm}:{self.password}")
        request = md5(f"{method}:{fields.get('uri', '')}")
        if self.qop:
            expected = md5(f"{secret}:{self.nonce}:{fields['nc']}:{fields['cnonce']}:{fields['qop']}:{request}")
        else:
            expected = md5(f"{secret}:{self.nonce}:{request}")
        return fields.get("username") == self.user and fields.get("response") == expected


_SDP = b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=door\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
_REASONS = {200: "OK", 401: "Unauthorized", 404: "Not Found", 461: "Unsupported Transport"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
