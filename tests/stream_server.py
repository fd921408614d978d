"""Real live cameras for tests, on loopback.

:class:`MjpegServer` is an HTTP MJPEG camera that can die, come back, hang or
stall. It plays a video's frames on a wall clock, like a camera: a client
that connects late sees the current frame, not the first one.
:class:`RtspDoor` is an RTSP camera's front door: it asks for Digest
credentials and a stream path the way IP cameras do, and streams nothing.
:class:`RtspCamera` is the whole camera: the same door, then the video as
H.264 or H.265 over RTP on the RTSP connection; it too can die and come back.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import socket
import socketserver
import struct
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np


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


class _LoopbackServer:
    """What the loopback cameras share: a threaded server that can die (:meth:`stop`) and come back on its port."""

    def __init__(self) -> None:
        self._port = 0  # the first start picks one; a start after a stop listens on it again
        self._server: socketserver.TCPServer | None = None
        self._clients: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    @property
    def port(self) -> int:
        assert self._port, "start() first"
        return self._port

    def _listen(self, server_class: type[socketserver.TCPServer], handler: type, name: str) -> None:
        self._stopping.clear()
        server_class.allow_reuse_address = True
        self._server = server_class(("127.0.0.1", self._port), handler)
        self._server.daemon_threads = True
        self._port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name=name, daemon=True).start()

    def _admit(self, client: socket.socket) -> None:
        """Remember a client's connection, so that :meth:`stop` cuts it off."""
        with self._lock:
            self._clients.append(client)

    def stop(self) -> None:
        """Die (a camera rebooting, unplugged): stop listening and cut every client off."""
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


class MjpegServer(_LoopbackServer):
    """``http://127.0.0.1:<port>/stream``; ``mode`` is ``serve``, ``hang`` (accept, send nothing) or ``stall``.

    In ``stall`` mode each connection gets ``stall_after`` frames and then
    silence with the socket left open: what a frozen camera looks like.
    """

    def __init__(self, frames: list[bytes], fps: float = 15.0) -> None:
        super().__init__()
        self.frames = frames
        self.fps = fps
        self.mode = "serve"
        self.stall_after = 20
        self.connections = 0
        self._epoch = time.monotonic()

    @property
    def url(self) -> str:
        """The stream address a camera config points at."""
        return f"http://127.0.0.1:{self.port}/stream"

    def start(self) -> MjpegServer:
        """Listen (again) on the same port."""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/stream":
                    self.send_error(404)
                    return
                owner._admit(self.connection)
                owner.connections += 1
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

        self._listen(ThreadingHTTPServer, Handler, "mjpeg-server")
        return self


@dataclass
class _RtspClient:
    """One RTSP connection: replies and a playing stream share it; the camera notes when it last heard from it."""

    connection: socket.socket
    rfile: BinaryIO
    wfile: BinaryIO
    sending: threading.Lock = field(default_factory=threading.Lock)
    heard: float = field(default_factory=time.monotonic)

    def send(self, data: bytes) -> bool:
        """Write ``data`` whole; False once the client is gone."""
        try:
            with self.sending:
                self.wfile.write(data)
        except OSError:
            return False
        return True


class RtspDoor(_LoopbackServer):
    """``rtsp://127.0.0.1:<port>/stream1`` behind Digest authentication (RFC 2617, MD5, as most cameras ask).

    OPTIONS is always answered; DESCRIBE gets 401 with a challenge until the
    credentials are right, then 404 for any other path, then 200 with a
    stream description; SETUP is refused, so nothing ever plays.
    ``answers`` records (User-Agent, method, status) of every request.
    """

    realm = "IP Camera"
    nonce = "5f3b1a2c9d8e7f60"
    sdp = b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=door\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"

    def __init__(
        self, user: str = "admin", password: str = "s3cr@t:pw", path: str = "/stream1", qop: bool = False
    ) -> None:
        super().__init__()
        self.user, self.password, self.path = user, password, path
        self.qop = qop  # ask for RFC 2617's qop="auth" variant (client nonce and count) instead of RFC 2069's
        self.answers: list[tuple[str, str, int]] = []

    def start(self) -> RtspDoor:
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                owner._admit(self.connection)
                owner._converse(_RtspClient(self.connection, self.rfile, self.wfile))

        self._listen(socketserver.ThreadingTCPServer, Handler, "rtsp-door")
        return self

    def url(self, user: str | None = None, password: str | None = None, path: str | None = None) -> str:
        """The door's URL with these credentials (percent-encode special characters yourself)."""
        credentials = f"{user}:{password}@" if user is not None else ""
        return f"rtsp://{credentials}127.0.0.1:{self.port}{path or self.path}"

    def _converse(self, client: _RtspClient) -> None:
        """Answer one client's requests until it hangs up; what it sends interleaved (RTCP) is read and dropped."""
        rfile = client.rfile
        while True:
            first = rfile.read(1)
            client.heard = time.monotonic()
            if first == b"$":
                _channel, length = struct.unpack(">BH", rfile.read(3))
                rfile.read(length)
                continue
            request = (first + rfile.readline()).decode("latin-1").strip()
            if not request:
                return
            headers = {}
            for line in iter(lambda: rfile.readline().decode("latin-1").strip(), ""):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            method, uri = request.split()[:2]
            status, extra, body = self._answer(method, uri, headers)
            self.answers.append((headers.get("user-agent", ""), method, status))
            reply = [f"RTSP/1.0 {status} {_REASONS[status]}", f"CSeq: {headers.get('cseq', '0')}", *extra]
            reply.append(f"Content-Length: {len(body)}")
            if not client.send(("\r\n".join(reply) + "\r\n\r\n").encode() + body):
                return
            if method == "PLAY" and status == 200:
                threading.Thread(target=self._play, args=(client,), name="rtsp-play", daemon=True).start()

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
        return 200, ["Content-Type: application/sdp", f"Content-Base: {uri}/"], self.sdp

    def _play(self, client: _RtspClient) -> None:
        """The door plays nothing."""

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


class RtspCamera(RtspDoor):
    """An IP camera behind the door: after DESCRIBE, SETUP and PLAY it streams the frames over RTP.

    The video is H.264 or H.265 (``codec``) as IP cameras send it (RFC 6184,
    RFC 7798: a keyframe with its parameter sets every ``keyframe_every``
    frames, P-frames between, the parameter sets also in the stream
    description). Frames go interleaved on the RTSP connection (RTP over
    TCP, what OpenCV asks for), on a wall clock like :class:`MjpegServer`'s:
    a client that connects late, or again after the camera came back, joins
    the stream where it is, as with a real camera, which is mostly between
    keyframes (``join_at`` makes every client join at that frame instead).
    A SETUP for RTP over UDP is refused (461): only TCP is served. A client
    that sends nothing (no keep-alive request, no RTCP report) for
    ``session_timeout_s`` is cut off, as cameras end such sessions.
    """

    session = "12345678"

    def __init__(
        self,
        frames: list[bytes],
        fps: float = 15.0,
        keyframe_every: int = 30,
        join_at: int | None = None,
        codec: str = "h264",
        session_timeout_s: float = 60.0,
        **door: Any,
    ) -> None:
        super().__init__(**door)
        self.session_timeout_s = session_timeout_s  # a client silent this long (no request, no RTCP) is cut off
        self.sessions_expired = 0
        self.fps = fps
        self.join_at = join_at  # every client starts at this frame of the loop instead of where the clock is
        self.frames = _encoded_frames(frames, fps, keyframe_every, codec)
        sets = {
            name: base64.b64encode(nal).decode()
            for nal in self.frames[0].nal_units
            if (name := PARAMETER_SETS[codec].get(_nal_type(codec, nal)))
        }
        if codec == "h264":
            fmtp = f"packetization-mode=1;sprop-parameter-sets={sets['sps']},{sets['pps']}"
        else:
            fmtp = f"sprop-vps={sets['vps']};sprop-sps={sets['sps']};sprop-pps={sets['pps']}"
        self.sdp = (
            "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=door\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n"
            f"a=rtpmap:96 {codec.upper()}/90000\r\na=fmtp:96 {fmtp}\r\na=control:track1\r\n"
        ).encode()
        self._epoch = time.monotonic()

    def _answer(self, method: str, uri: str, headers: dict[str, str]) -> tuple[int, list[str], bytes]:
        session = [f"Session: {self.session};timeout={self.session_timeout_s:g}"]
        if method == "SETUP":
            if "TCP" not in headers.get("transport", ""):
                return 461, [], b""
            return 200, ["Transport: RTP/AVP/TCP;unicast;interleaved=0-1", *session], b""
        if method in ("PLAY", "TEARDOWN"):
            return 200, session, b""
        return super()._answer(method, uri, headers)

    def _play(self, client: _RtspClient) -> None:
        """Every frame in order from the one the wall clock is at, paced by it, while the client keeps the session."""
        index, sequence = int((time.monotonic() - self._epoch) * self.fps), 0
        if self.join_at is not None:  # the camera's clock restarts with the client, at that frame
            self._epoch, index = time.monotonic() - self.join_at / self.fps, self.join_at
        while not self._stopping.is_set():
            if time.monotonic() - client.heard > self.session_timeout_s:  # as cameras do: the session is over
                self.sessions_expired += 1
                with contextlib.suppress(OSError):
                    client.connection.shutdown(socket.SHUT_RDWR)
                return
            frame = self.frames[index % len(self.frames)]
            packets = frame.packets(sequence, timestamp=int(index * 90_000 / self.fps))
            sequence += len(packets)
            if not client.send(b"".join(b"$\x00" + struct.pack(">H", len(packet)) + packet for packet in packets)):
                return
            index += 1
            self._stopping.wait(max(0.0, self._epoch + index / self.fps - time.monotonic()))


def _rtp(last: bool, sequence: int, timestamp: int) -> bytes:
    """An RTP header (RFC 3550) of payload type 96, the SDP's; the marker bit ends a frame."""
    return struct.pack(">BBHII", 0x80, (0x80 if last else 0) | 96, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, 0x5EED)


PARAMETER_SETS = {"h264": {7: "sps", 8: "pps"}, "h265": {32: "vps", 33: "sps", 34: "pps"}}  # NAL unit types


def _nal_type(codec: str, nal: bytes) -> int:
    return nal[0] & 0x1F if codec == "h264" else (nal[0] >> 1) & 0x3F


@dataclass(frozen=True)
class _AccessUnit:
    """One frame's NAL units (parameter sets and slices), sent as RFC 6184 (H.264, mode 1) or RFC 7798 (H.265) do."""

    codec: str
    nal_units: list[bytes]

    def packets(self, sequence: int, timestamp: int, size: int = 1400) -> list[bytes]:
        """A small NAL unit in a packet of its own, a large one in fragmentation units."""
        payloads = []
        for nal in self.nal_units:
            if len(nal) <= size:
                payloads.append(nal)
                continue
            if self.codec == "h264":  # FU-A: the NAL header's F and NRI bits, type 28
                indicator, header_size = bytes([(nal[0] & 0xE0) | 28]), 1
            else:  # FU: the two-byte NAL header with type 49
                indicator, header_size = bytes([(nal[0] & 0x81) | (49 << 1), nal[1]]), 2
            kind = _nal_type(self.codec, nal)
            for offset in range(header_size, len(nal), size):
                first, last = offset == header_size, offset + size >= len(nal)
                fragment = bytes([(0x80 if first else 0) | (0x40 if last else 0) | kind])
                payloads.append(indicator + fragment + nal[offset : offset + size])
        return [_rtp(n == len(payloads) - 1, sequence + n, timestamp) + p for n, p in enumerate(payloads)]


def _encoded_frames(frames: list[bytes], fps: float, keyframe_every: int, codec: str) -> list[_AccessUnit]:
    """The JPEG frames encoded as a camera's H.264 or H.265 stream that loops seamlessly (a keyframe opens it)."""
    import av  # the dev extra's PyAV: FFmpeg with libx264 and libx265

    encoder = av.CodecContext.create({"h264": "libx264", "h265": "libx265"}[codec], "w")
    height, width = cv2.imdecode(np.frombuffer(frames[0], np.uint8), cv2.IMREAD_COLOR).shape[:2]
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base, encoder.framerate = Fraction(1, round(fps)), Fraction(round(fps))
    encoder.gop_size = keyframe_every
    # no B-frames and no scene-cut keyframes, as a camera's encoder: keyframes only every keyframe_every frames
    options = {"preset": "veryfast", "tune": "zerolatency", "forced-idr": "1"}
    if codec == "h264":
        options |= {"bf": "0", "sc_threshold": "0", "keyint_min": str(keyframe_every)}
    else:
        gop = f"keyint={keyframe_every}:min-keyint={keyframe_every}"
        options["x265-params"] = f"{gop}:scenecut=0:bframes=0:log-level=error"
    encoder.options = options
    units: list[bytes] = []
    for index, jpeg in enumerate(frames):
        image = av.VideoFrame.from_ndarray(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), "bgr24")
        image = image.reformat(format="yuv420p")
        image.pts = index
        image.pict_type = av.video.frame.PictureType.I if index == 0 else av.video.frame.PictureType.NONE
        units += [bytes(packet) for packet in encoder.encode(image)]
    units += [bytes(packet) for packet in encoder.encode(None)]
    return [
        _AccessUnit(codec, [nal.rstrip(b"\x00") for nal in unit.split(b"\x00\x00\x01") if nal.strip(b"\x00")])
        for unit in units
    ]


_REASONS = {200: "OK", 401: "Unauthorized", 404: "Not Found", 461: "Unsupported Transport"}
