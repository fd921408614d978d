"""The web page's HTTP server: aiohttp on its own thread and event loop, beside the counting threads.

aiohttp is one well-kept package that is both the server and the framework,
and its streamed responses carry server-sent events to many open pages from
one thread. Every file the page loads comes from this package (``static/``);
the Content-Security-Policy lets the page load nothing from anywhere else.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from importlib import resources
from typing import Protocol

from aiohttp import web

from analyzer.errors import AnalyzerError, ConfigError
from analyzer.outputs.web.access import Access
from analyzer.outputs.web.today import Today

#: How often an open page hears each camera's health (state, fps, drops, reconnects).
HEALTH_EVERY_S = 2.0
PAGES = {"/": "today.html", "/setup": "setup.html"}
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; style-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
Health = Callable[[], dict[str, dict[str, object]]]


class CameraSetup(Protocol):
    """What the set-up view asks of the running cameras (the pipeline answers)."""

    def cameras(self) -> list[dict[str, object]]:
        """Each camera's id, frame size, line, zones and masks (frame fractions), and where a save goes."""
        ...

    def still(self, camera: str) -> bytes:
        """The camera's latest frame as JPEG, faces blurred (unless the config says otherwise); never stored."""
        ...

    def figures(self, camera: str) -> dict[str, object]:
        """``check``'s figures over the camera's last minutes."""
        ...

    def save(self, camera: str, shape: dict[str, object], who: str) -> dict[str, object]:
        """Count by a new line, zones and masks from the next frame, and keep them in the config file.

        Raises ConfigError (the config loader's message) for a shape it refuses.
        """
        ...


class WebPage:
    """Serves the page on ``host:port`` until :meth:`close`.

    Example:
        >>> page = WebPage("127.0.0.1", 8108, today, setup, Access({}, required=False), health)  # doctest: +SKIP
        >>> page.start(); print(page.url)  # doctest: +SKIP
    """

    def __init__(
        self,
        host: str,
        port: int,
        today: Today,
        setup: CameraSetup,
        access: Access,
        health: Health,
        log: Callable[[str], None] = print,
    ) -> None:
        self.host, self.port = host, port
        self.today, self.setup, self.access, self.health, self.log = today, setup, access, health, log
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="web", daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The address to open."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> None:
        """Bind and serve; a port in use is a ConfigError now, not a page that never answers."""
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=30)
        except OSError as error:
            self._stop_loop()
            raise ConfigError(
                f"web.port: cannot listen on {self.host}:{self.port} ({error.strerror or error}); pick a free port "
                "(--web-port N) or 0 to turn the page off"
            ) from None

    async def _serve(self) -> None:
        app = web.Application(middlewares=[self._guard], client_max_size=256 * 1024)
        app.router.add_get("/", self._page)
        app.router.add_get("/setup", self._page)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/favicon.ico", self._favicon)
        app.router.add_get("/api/today", self._today)
        app.router.add_get("/api/events", self._events)
        app.router.add_get("/api/cameras", self._cameras)
        app.router.add_get("/api/cameras/{camera}/still.jpg", self._still)
        app.router.add_get("/api/cameras/{camera}/figures", self._figures)
        app.router.add_post("/api/cameras/{camera}/setup", self._save)
        app.on_shutdown.append(self._end_streams)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port, shutdown_timeout=1.0).start()

    def close(self) -> None:
        """Stop serving; open pages' event streams end; the port is free when this returns."""
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
            self._runner = None
        self._stop_loop()

    def _stop_loop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

    async def _end_streams(self, app: web.Application) -> None:
        self.today.close_listeners()

    # --- requests ------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        """Refuse a request without the password (when one is needed) and a change sent from another site."""
        user = self.access.user(request.headers.get("Authorization"))
        if user is None:
            return web.Response(
                status=401,
                text="this page needs a user and password (web.users in the config)\n",
                headers={"WWW-Authenticate": 'Basic realm="footfall analyzer", charset="UTF-8"', **SECURITY_HEADERS},
            )
        if request.method == "POST" and request.content_type != "application/json":
            # a form on another web site cannot send JSON without the browser asking this server first
            return web.json_response({"error": "send the set-up as application/json"}, status=415)
        request["user"] = user
        response = await handler(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(body=_asset(PAGES[request.path]), content_type="text/html", charset="utf-8")

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        kind = STATIC_TYPES.get(name[name.rfind(".") :]) if "." in name else None
        if kind is None or "/" in name or name.startswith("."):
            raise web.HTTPNotFound()
        try:
            body = _asset(name)
        except FileNotFoundError:
            raise web.HTTPNotFound() from None
        return web.Response(body=body, content_type=kind, headers={"Cache-Control": "no-cache"})

    async def _favicon(self, request: web.Request) -> web.Response:
        return web.Response(body=_asset("favicon.svg"), content_type="image/svg+xml")

    async def _today(self, request: web.Request) -> web.Response:
        return web.json_response({**self.today.snapshot(), "health": self.health()})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: each new visit with the day's figures, and the cameras' health every few seconds."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        response.headers.update(SECURITY_HEADERS)
        await response.prepare(request)
        events = self.today.subscribe()
        try:
            await _send(response, "health", self.health())
            while True:
                try:
                    event = await asyncio.wait_for(events.get(), HEALTH_EVERY_S)
                except asyncio.TimeoutError:
                    await _send(response, "health", self.health())
                    continue
                if event is None:
                    break
                await _send(response, "visit", {**event, "today": self.today.snapshot()})
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.today.unsubscribe(events)
        return response

    async def _cameras(self, request: web.Request) -> web.Response:
        return web.json_response(await self._blocking(self.setup.cameras))

    def _camera(self, request: web.Request) -> str:
        camera = request.match_info["camera"]
        if camera not in self.today.cameras:
            raise web.HTTPNotFound(text=f"no camera '{camera}'")
        return camera

    async def _still(self, request: web.Request) -> web.Response:
        camera = self._camera(request)
        try:
            body = await self._blocking(self.setup.still, camera)
        except LookupError as error:
            return web.json_response({"error": str(error)}, status=503)
        return web.Response(body=body, content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def _figures(self, request: web.Request) -> web.Response:
        return web.json_response(await self._blocking(self.setup.figures, self._camera(request)))

    async def _save(self, request: web.Request) -> web.Response:
        camera = self._camera(request)
        try:
            shape = await request.json()
        except json.JSONDecodeError as error:
            return web.json_response({"error": f"not JSON: {error}"}, status=400)
        if not isinstance(shape, dict):
            return web.json_response({"error": "send {line, zones, masks}"}, status=400)
        who = f"{request['user']} from {request.remote}"
        try:
            saved = await self._blocking(self.setup.save, camera, shape, who)
        except AnalyzerError as error:  # the loader's own message for a bad shape
            return web.json_response({"error": str(error)}, status=400)
        return web.json_response(saved)

    async def _blocking(self, call: Callable, *args: object) -> object:
        """Run a call that decodes, detects or writes files off the event loop: other pages keep streaming."""
        return await asyncio.get_running_loop().run_in_executor(None, call, *args)


async def _send(response: web.StreamResponse, event: str, data: object) -> None:
    await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())


def _asset(name: str) -> bytes:
    """A file of the page, from the installed package."""
    return resources.files("analyzer.outputs.web").joinpath("static", name).read_bytes()
