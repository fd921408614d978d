"""A real live camera for tests: an HTTP MJPEG server on loopback that can die, come back, hang or stall.

It plays a video's frames on a wall clock, like a camera: a client that
connects late sees the current frame, not the first one.
"""

from __future__ import annotations

import contextlib
import socket
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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
