"""A camera's set-up while it counts: the web page's stills and figures, and a new line, zones or masks applied at once.

Each camera thread hands over a reference to its latest frame and the boxes
it tracked there; a still is made from it only when the page asks, with the
faces found by a second detector (whole frame, finer tiles, a lower score)
and the tracked boxes blurred, and is never written anywhere. A new shape is
checked by the config loader, written into the config file when the run has
one to write (comments kept), and taken by the camera from its next frame.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from analyzer.config import CameraConfig, Config, check_config, from_dict
from analyzer.errors import ConfigError
from analyzer.outputs.web.stills import blurred, jpeg
from analyzer.pipeline.camera_stages import CameraStages, FrameDone
from analyzer.pipeline.detect import FaceDetector
from analyzer.pipeline.site_watch import SiteWatch, site_figures
from analyzer.service.config_file import ConfigFile

#: The set-up view's figures cover this much of each camera's recent stream.
FIGURES_WINDOW_S = 300.0
#: The stills' own detector: finer and more willing than a camera's, as a face left sharp is the costly miss.
STILL_DETECTOR = {"model": "full_range", "min_score": 0.3, "tiles": 2}


def geometry(camera: CameraConfig) -> dict[str, object]:
    """A camera's line, zones and masks in frame fractions, as the page draws them."""
    return {
        "line": None if camera.line is None else {"start": camera.line.start, "end": camera.line.end},
        "zones": [{"name": zone.name, "polygon": zone.polygon} for zone in camera.zones],
        "masks": camera.masks,
    }


class LiveSetup:
    """The running cameras' side of the set-up view (:class:`analyzer.outputs.web.server.CameraSetup`).

    Args:
        config: the run's config; a saved shape replaces its camera's line, zones and masks.
        config_file: where a saved shape is kept; None: applied until the run stops only.
        not_saved_because: why there is no config file to keep it in (told on the page).
        on_reshaped: told of each camera whose shape changed (the report's and metrics' view of it).
        show_faces: stills keep faces sharp (``web.show_faces_in_stills``).
    """

    def __init__(
        self,
        config: Config,
        config_file: ConfigFile | None = None,
        not_saved_because: str = "",
        on_reshaped: Callable[[CameraConfig], None] = lambda camera: None,
        log: Callable[[str], None] = print,
        show_faces: bool = False,
    ) -> None:
        self.config = config
        self.config_file = config_file
        self.not_saved_because = not_saved_because
        self.on_reshaped = on_reshaped
        self.log = log
        self.show_faces = show_faces
        self.watches = {camera.id: SiteWatch(FIGURES_WINDOW_S) for camera in config.cameras}
        self._stages: dict[str, CameraStages] = {}
        self._latest: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # camera: (BGR image, tracked boxes)
        self._detector: FaceDetector | None = None
        self._still_lock = threading.Lock()  # one still at a time: the detector is not thread-safe
        self._save_lock = threading.Lock()
        self._stills_made = 0

    @property
    def _saved_to(self) -> str | None:
        return None if self.config_file is None else str(self.config_file.path)

    def _camera(self, camera_id: str) -> tuple[int, CameraConfig]:
        for index, camera in enumerate(self.config.cameras):
            if camera.id == camera_id:
                return index, camera
        raise LookupError(f"no camera '{camera_id}'")

    # --- fed by the camera threads --------------------------------------

    def attach(self, camera_id: str, stages: CameraStages) -> None:
        """The camera's stages: a saved shape goes to them."""
        self._stages[camera_id] = stages

    def frame_read(self, camera_id: str) -> None:
        """The camera's stream delivered a frame."""
        self.watches[camera_id].frame_read()

    def frame_done(self, camera_id: str, done: FrameDone) -> None:
        """A frame went through the stages: its figures, and (by reference) the frame for a still."""
        self.watches[camera_id].record(done)
        if done.outcome is not None:
            self._latest[camera_id] = (done.frame.image, done.outcome.tracks.boxes)

    def close(self) -> None:
        """Release the stills' detector (when no other thread writes to stderr)."""
        with self._still_lock:
            if self._detector is not None:
                self._detector.close()
                self._detector = None

    # --- asked by the page ----------------------------------------------

    def cameras(self) -> list[dict[str, object]]:
        """Each camera's id, frame size and shape, and where a save goes."""
        described = []
        for camera in self.config.cameras:
            watch = self.watches[camera.id]
            described.append(
                {
                    "id": camera.id,
                    "width": watch.size[0],
                    "height": watch.size[1],
                    **geometry(camera),
                    "saved_to": self._saved_to,
                    "not_saved_because": self.not_saved_because,
                    "faces_blurred": not self.show_faces,
                }
            )
        return described

    def still(self, camera_id: str) -> bytes:
        """The camera's latest frame as JPEG, every face blurred unless ``show_faces``."""
        self._camera(camera_id)
        latest = self._latest.get(camera_id)
        if latest is None:
            raise LookupError(f"camera '{camera_id}' has not delivered a frame yet; try again in a moment")
        image, tracked = latest
        if self.show_faces:
            return jpeg(image)
        with self._still_lock:
            if self._detector is None:
                self._detector = FaceDetector(**STILL_DETECTOR)  # type: ignore[arg-type]
            self._stills_made += 1
            found = self._detector.detect(self._detector.rgb(image), self._stills_made * 1000)
        return jpeg(blurred(image, np.concatenate([found.boxes.reshape(-1, 4), tracked.reshape(-1, 4)])))

    def figures(self, camera_id: str) -> dict[str, object]:
        """``check``'s figures over the camera's last minutes."""
        _, camera = self._camera(camera_id)
        return dataclasses.asdict(site_figures(camera, self.config, self.watches[camera_id]))

    def save(self, camera_id: str, shape: dict[str, object], who: str) -> dict[str, object]:
        """Check ``shape`` ({line, zones, masks}) as the loader does, keep it in the config file, count by it."""
        index, running = self._camera(camera_id)
        line, zones, masks = shape.get("line"), shape.get("zones") or [], shape.get("masks") or []
        with self._save_lock:
            try:
                reshaped = self._checked(index, running, line, zones, masks)
            except ConfigError as error:  # named as the loader names it: with the file, when there is one
                raise ConfigError(f"{self.config_file.path}: {error}" if self.config_file else str(error)) from None
            if self.config_file is not None:
                saved = self.config_file.set_camera_geometry(
                    camera_id,
                    None if reshaped.line is None else (reshaped.line.start, reshaped.line.end),
                    [(zone.name, zone.polygon) for zone in reshaped.zones],
                    reshaped.masks,
                )
                reshaped = next(camera for camera in saved.cameras if camera.id == camera_id)  # as the file has it
            before = geometry(running)
            _take_shape(running, reshaped)
            stages = self._stages.get(camera_id)
            if stages is not None:
                stages.reshape(copy.deepcopy(running))
            self.on_reshaped(running)
        where = f"saved to {self.config_file.path}" if self.config_file else f"not saved: {self.not_saved_because}"
        self.log(f"[{camera_id}] set-up changed by {who}: {before} -> {geometry(running)}; {where}")
        return {
            "camera": camera_id,
            **geometry(running),
            "saved_to": self._saved_to,
            "note": "counting with it from the next frame; " + where,
        }

    def _checked(self, index: int, running: CameraConfig, line: object, zones: object, masks: object) -> CameraConfig:
        """The running camera with the new shape, checked by the loader's own code (its messages)."""
        path = f"cameras[{index}]"
        if line is not None:
            if not isinstance(line, dict):
                raise ConfigError(f"{path}.line: expected a mapping with start and end, got {line!r}")
            kept = dataclasses.asdict(running.line) if running.line else {}
            line = {**kept, "start": line.get("start"), "end": line.get("end")}
        fields = {"id": running.id, "source": running.source, "line": line, "zones": zones, "masks": masks}
        partial = from_dict(CameraConfig, fields, path)
        reshaped = copy.deepcopy(running)
        _take_shape(reshaped, partial)
        candidate = copy.copy(self.config)
        candidate.cameras = [reshaped if camera is running else camera for camera in self.config.cameras]
        check_config(candidate)
        return reshaped


def _take_shape(camera: CameraConfig, shaped: CameraConfig) -> None:
    """Give ``camera`` the line, zones and masks of ``shaped`` (its other settings stay)."""
    camera.line, camera.zones, camera.masks = shaped.line, shaped.zones, shaped.masks


def not_saved_because(config_path: Path, from_command_line: bool, shipped: Path) -> str:
    """Why a run cannot keep a new set-up in its config file; "" when it can."""
    if from_command_line:
        return "the cameras were given with --source; put them in a config file (-c) to keep their set-up"
    if config_path.resolve() == shipped.resolve():
        return "the shipped demo config is not changed; copy it and run with -c to keep a set-up"
    return ""
