"""Face detection with MediaPipe Tasks (BlazeFace), whole frame, ROI or tiles.

Full-range BlazeFace on a whole 1080p frame misses faces under ~80 px; 2×2
overlapping tiles find faces down to ~60 px at four times the cost, and a
3×3 grid on top of that finds most faces down to 30 px at 720p, so tiles are
a per-camera choice. ``tiles: n`` searches the whole ROI and every grid from
2×2 up to n×n: each grid finds the faces that are small for the one above
it, and the coarser passes find the faces that a finer grid cuts. A face cut
by a tile border shows up in that tile as a truncated box, so tile boxes
that touch an inner tile border are dropped. Tiles see small faces twice
where they overlap: merged by NMS.

The keypoints that full-range BlazeFace gives for a face in a whole frame
are too coarse to align a chip from (on simulated entrances they cost 3-4
points of fairface9 accuracy at 90-140 px and far more on small faces), so
the few faces that are classified get their keypoints refined: the face's
neighbourhood is cut out, scaled to a fixed size and run through
short-range BlazeFace, the way training and evaluation located faces.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import queue
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from analyzer.core.faces import NUM_KEYPOINTS, Faces, non_max_suppression
from analyzer.errors import ConfigError
from analyzer.service.console import quiet_native_stderr
from analyzer.service.model_assets import asset_path

if TYPE_CHECKING:
    from analyzer.config import DetectorConfig

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MODEL_FILES = {
    "short_range": "face_detection_short_range.tflite",
    "full_range": "face_detection_full_range_sparse.tflite",
}


def model_file(model: str, cache: Path | None = None) -> Path:
    """Path of the fetched BlazeFace file for ``short_range`` or ``full_range``."""
    if model not in MODEL_FILES:
        raise ConfigError(f"detector.model: '{model}' is not one of {', '.join(MODEL_FILES)}")
    return asset_path(MODEL_FILES[model], cache)


def _mediapipe_faces(result: object, width: int, height: int) -> Faces:
    detections = result.detections  # type: ignore[attr-defined]
    if not detections:
        return Faces.empty()
    boxes = np.array(
        [
            [
                d.bounding_box.origin_x,
                d.bounding_box.origin_y,
                d.bounding_box.origin_x + d.bounding_box.width,
                d.bounding_box.origin_y + d.bounding_box.height,
            ]
            for d in detections
        ],
        dtype=np.float32,
    )
    scores = np.array([d.categories[0].score for d in detections], dtype=np.float32)
    keypoints = np.zeros((len(detections), NUM_KEYPOINTS, 2), dtype=np.float32)
    for row, detection in enumerate(detections):
        for column, point in enumerate(detection.keypoints[:NUM_KEYPOINTS]):
            keypoints[row, column] = (point.x * width, point.y * height)
    return Faces(boxes, scores, keypoints)


def _close_quietly(detectors: list[object]) -> None:
    with quiet_native_stderr():
        for detector in detectors:
            detector.close()  # type: ignore[attr-defined]


class _AtOnce(concurrent.futures.Executor):
    """Runs each call at once on the calling thread: MediaPipe's call wrappers take an executor."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # handed to the caller by result(), as the executor it replaces does
            future.set_exception(error)
        return future


class _CallerThreadLibrary:
    """One graph's MediaPipe C functions called on the caller's thread, in place of its ``SerialDispatcher``."""

    def __init__(self, library: object, signatures: Iterable[Any]) -> None:
        for signature in signatures:
            setattr(self, signature.func_name, signature.create_python_wrapper(library, _AtOnce()))

    def close(self) -> None:
        """Nothing to stop: it has no thread."""


def _on_caller_thread(detector: object) -> None:
    """Have ``detector`` call MediaPipe's C library on the thread that searches, not on a thread of its own.

    mediapipe 1.2 sends each call of a graph through a one-thread executor of
    that graph: two thread hand-offs, and two waits for Python's lock, per
    search. All that executor guarantees is one call of a graph at a time,
    which holds here already: a graph is its camera's own, or lent to one
    camera at a time (:class:`SharedGraphs`). Where MediaPipe's internals are
    not what this expects (another version), the graph keeps its thread.
    """
    from mediapipe.tasks.python.core import mediapipe_c_bindings, serial_dispatcher
    from mediapipe.tasks.python.vision import face_detector

    dispatcher = getattr(detector, "_lib", None)
    signatures = getattr(face_detector, "_CTYPES_SIGNATURES", None)
    if not isinstance(dispatcher, serial_dispatcher.SerialDispatcher) or signatures is None:
        return
    detector._lib = _CallerThreadLibrary(mediapipe_c_bindings.load_raw_library(), signatures)  # type: ignore[attr-defined]
    dispatcher.close()


def _create(model_path: Path, video: bool, min_score: float) -> object:
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.FaceDetectorOptions(
        base_options=BaseOptions(model_asset_path=str(model_path)),
        running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE,
        min_detection_confidence=min_score,
    )
    with quiet_native_stderr():
        detector = vision.FaceDetector.create_from_options(options)
        # The first inference logs a native warning too; take it here, silenced.
        blank = _to_mp_image(np.zeros((64, 64, 3), np.uint8))
        if video:
            detector.detect_for_video(blank, 0)
        else:
            detector.detect(blank)
    _on_caller_thread(detector)
    return detector


class AlignedFrames:
    """MediaPipe images over one 64-byte aligned buffer, reused frame after frame.

    LiteRT copies unaligned input anyway, and warns. The buffer is kept because a
    fresh one per frame costs its page faults (milliseconds at 720p); reusing it
    is safe since a detection (VIDEO or IMAGE mode) is done with its image when
    it returns, and each camera's detector has its own buffers.
    """

    def __init__(self) -> None:
        self._buffer = np.empty(0, np.uint8)

    def _aligned(self, shape: tuple[int, ...]) -> np.ndarray:
        nbytes = int(np.prod(shape))
        if self._buffer.nbytes < nbytes + 64:
            self._buffer = np.empty(nbytes + 64, np.uint8)
        offset = -self._buffer.ctypes.data % 64
        return self._buffer[offset : offset + nbytes].reshape(shape)

    def rgb(self, bgr: np.ndarray) -> np.ndarray:
        """``bgr`` as RGB in the buffer, converted and placed in one pass; valid until the next call.

        :meth:`image` then takes it as it is: a search costs one pass over the frame instead of two.
        """
        import cv2

        aligned = self._aligned(bgr.shape)
        cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=aligned)
        return aligned

    def image(self, rgb: np.ndarray) -> object:
        """``rgb`` (H, W, 3) uint8 as a MediaPipe SRGB image, copied into the buffer unless already aligned."""
        import mediapipe as mp

        if rgb.ctypes.data % 64 or not rgb.flags.c_contiguous:
            aligned = self._aligned(rgb.shape)
            np.copyto(aligned, rgb)
            rgb = aligned
        return mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)


class SharedGraphs:
    """MediaPipe face-detector graphs in IMAGE mode, lent to every camera in turn: a few per box, not one per camera.

    A graph holds its own buffers and threads (about 10 MB once it has searched
    a 720p frame). VIDEO mode (one graph per camera, timestamps in order) and
    IMAGE mode find the same boxes with the same scores (docs/PERFORMANCE.md),
    so cameras with the same model and ``min_score`` can share ``count``
    graphs (one per core: more would only queue for the cores). A camera
    waits for a free one.

    Example:
        >>> graphs = SharedGraphs(model_file("full_range"), 0.5, count=2)  # doctest: +SKIP
        >>> detector = FaceDetector("full_range", 0.5, graphs=graphs)  # doctest: +SKIP
    """

    def __init__(self, model_path: Path, min_score: float, count: int) -> None:
        self.model_path, self.min_score = model_path, min_score
        self._graphs = [_create(model_path, video=False, min_score=min_score) for _ in range(max(count, 1))]
        self._free: queue.SimpleQueue[object] = queue.SimpleQueue()
        for graph in self._graphs:
            self._free.put(graph)

    def __len__(self) -> int:
        return len(self._graphs)

    @contextlib.contextmanager
    def lent(self) -> Iterator[object]:
        """A graph for one search, given back after it."""
        graph = self._free.get()
        try:
            yield graph
        finally:
            self._free.put(graph)

    def close(self) -> None:
        """Release the graphs (quietly: call it when no camera searches any more)."""
        _close_quietly(self._graphs)
        self._graphs = []


def _to_mp_image(rgb: np.ndarray) -> object:
    """A MediaPipe image of ``rgb`` for a one-off search (aligned in a buffer of its own if need be)."""
    return AlignedFrames().image(rgb)


@dataclass(frozen=True)
class Region:
    """A rectangle ``x1, y1, x2, y2`` as fractions 0..1 of the frame."""

    x1: float
    y1: float
    x2: float
    y2: float

    def pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The rectangle in whole pixels of a ``width``×``height`` frame."""
        return (
            round(self.x1 * width),
            round(self.y1 * height),
            max(round(self.x2 * width), round(self.x1 * width) + 1),
            max(round(self.y2 * height), round(self.y1 * height) + 1),
        )


def pyramid_regions(tiles: int, overlap: float, roi: Region | None = None) -> list[Region]:
    """The whole ``roi``, then every grid from 2×2 up to ``tiles``×``tiles`` (coarse to fine)."""
    return [region for grid in range(1, tiles + 1) for region in tile_regions(grid, overlap, roi)]


def tile_regions(tiles: int, overlap: float, roi: Region | None = None) -> list[Region]:
    """Split ``roi`` (default whole frame) into ``tiles``×``tiles`` overlapping regions."""
    base = roi or Region(0.0, 0.0, 1.0, 1.0)
    if tiles == 1:
        return [base]
    width = (base.x2 - base.x1) / (tiles - (tiles - 1) * overlap)
    height = (base.y2 - base.y1) / (tiles - (tiles - 1) * overlap)
    regions = []
    for row in range(tiles):
        for column in range(tiles):
            x1 = base.x1 + column * width * (1 - overlap)
            y1 = base.y1 + row * height * (1 - overlap)
            regions.append(Region(x1, y1, min(x1 + width, base.x2), min(y1 + height, base.y2)))
    return regions


def _touches_inner_border(
    boxes: np.ndarray, tile: tuple[int, int, int, int], whole: tuple[int, int, int, int], margin: float = 3.0
) -> np.ndarray:
    """(N,) True for boxes cut by a tile border that is not also the ROI border."""
    cut = np.zeros(len(boxes), dtype=bool)
    for axis, (low, high), (whole_low, whole_high) in (
        (0, (tile[0], tile[2]), (whole[0], whole[2])),
        (1, (tile[1], tile[3]), (whole[1], whole[3])),
    ):
        if low > whole_low:
            cut |= boxes[:, axis] <= low + margin
        if high < whole_high:
            cut |= boxes[:, axis + 2] >= high - margin
    return cut


class FaceDetector:
    """MediaPipe BlazeFace for one camera: its own VIDEO-mode graphs, or graphs it shares with other cameras.

    Args:
        model: ``full_range`` (entrance cameras, faces from ~60 px) or
            ``short_range`` (kiosks, faces within ~2 m).
        min_score: raising it drops faint faces (fewer false faces, more
            misses); lowering it finds more small faces and more noise.
        roi: only this part of the frame is searched.
        tiles: 1 (whole ROI), 2 (plus 2×2 overlapping tiles; ~5× the cost) or
            3 (plus 3×3 more; ~15× the cost, faces down to ~30 px at 720p).
        tile_overlap: fraction of a tile shared with its neighbour.
        nms_iou: boxes overlapping more than this are one face.
        graphs: graphs of ``model`` at ``min_score`` shared with other cameras; None makes its own.

    Example:
        >>> detector = FaceDetector("full_range")  # doctest: +SKIP
        >>> faces = detector.detect(rgb_frame, timestamp_ms=0)  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str = "full_range",
        min_score: float = 0.5,
        roi: Region | None = None,
        tiles: int = 1,
        tile_overlap: float = 0.2,
        nms_iou: float = 0.3,
        cache: Path | None = None,
        graphs: SharedGraphs | None = None,
    ) -> None:
        path = model_file(model, cache)
        if graphs is not None and (graphs.model_path, graphs.min_score) != (path, min_score):
            raise ValueError(f"graphs of {graphs.model_path} at {graphs.min_score} shared for {path} at {min_score}")
        whole = roi or Region(0.0, 0.0, 1.0, 1.0)
        self._regions = pyramid_regions(tiles, tile_overlap, whole)
        self._whole = whole
        self._graphs = graphs
        own = graphs is None
        self._detectors = [_create(path, video=True, min_score=min_score) for _ in self._regions] if own else []
        self._frames = [AlignedFrames() for _ in self._regions]
        self._rgb = AlignedFrames()
        self._nms_iou = nms_iou
        self._last_timestamp_ms = 0  # the warm-up frame used timestamp 0

    @classmethod
    def from_config(cls, settings: DetectorConfig, graphs: SharedGraphs | None = None) -> FaceDetector:
        """The detector a camera's ``detector`` settings ask for (``analyzer run`` and ``analyzer check`` alike)."""
        roi = Region(*settings.roi) if settings.roi else None
        return cls(settings.model, settings.min_score, roi=roi, tiles=settings.tiles, graphs=graphs)

    def rgb(self, bgr: np.ndarray) -> np.ndarray:
        """A decoded (BGR) frame in RGB for :meth:`detect` and the stages after it; valid until the next call.

        Converted straight into an aligned buffer MediaPipe reads as it is, so a whole-frame search copies the
        frame once, not twice.
        """
        return self._rgb.rgb(bgr)

    def detect(self, frame: np.ndarray, timestamp_ms: int) -> Faces:
        """Faces in an RGB frame (H, W, 3) uint8, in frame pixels."""
        # MediaPipe VIDEO mode needs strictly increasing timestamps.
        timestamp_ms = max(int(timestamp_ms), self._last_timestamp_ms + 1)
        self._last_timestamp_ms = timestamp_ms
        height, width = frame.shape[:2]
        found = []
        for index, (region, frames) in enumerate(zip(self._regions, self._frames, strict=True)):
            x1, y1, x2, y2 = region.pixels(width, height)
            image = frames.image(frame[y1:y2, x1:x2])
            if self._graphs is None:
                result = self._detectors[index].detect_for_video(image, timestamp_ms)  # type: ignore[attr-defined]
            else:
                with self._graphs.lent() as graph:
                    result = graph.detect(image)  # type: ignore[attr-defined]
            faces = _mediapipe_faces(result, x2 - x1, y2 - y1).shifted(x1, y1)
            if region is not self._whole and len(faces):
                faces = faces[~_touches_inner_border(faces.boxes, (x1, y1, x2, y2), self._whole.pixels(width, height))]
            found.append(faces)
        faces = Faces.concatenate(found)
        if len(self._regions) > 1 and len(faces) > 1:
            faces = non_max_suppression(faces, self._nms_iou)
        return faces

    def close(self) -> None:
        """Release its own MediaPipe graphs (quietly: call it when no other thread writes to stderr).

        Shared graphs are their owner's to close, once every camera is done.
        """
        _close_quietly(self._detectors)
        self._detectors = []


class PhotoFaceFinder:
    """Finds the main face in a still photo (labelled data, ``--align detect``).

    The photo is padded first: BlazeFace misses faces that fill the whole image,
    as tight crops do. Short-range is tried first (big faces), then full-range.
    """

    def __init__(self, min_score: float = 0.3, pad_fraction: float = 0.3, cache: Path | None = None) -> None:
        self._detectors = [
            _create(model_file(model, cache), video=False, min_score=min_score)
            for model in ("short_range", "full_range")
        ]
        self._pad_fraction = pad_fraction

    def find(self, image: np.ndarray) -> Faces:
        """The highest-scoring face of an RGB image, as 0 or 1 rows, in image pixels."""
        import cv2

        height, width = image.shape[:2]
        pad = round(max(height, width) * self._pad_fraction)
        padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        for detector in self._detectors:
            result = detector.detect(_to_mp_image(padded))  # type: ignore[attr-defined]
            faces = _mediapipe_faces(result, padded.shape[1], padded.shape[0])
            if len(faces):
                best = int(np.argmax(faces.scores))
                return faces[[best]].shifted(-pad, -pad)
        return Faces.empty()

    def close(self) -> None:
        """Release the MediaPipe graphs (quietly: call it when no other thread writes to stderr)."""
        _close_quietly(self._detectors)
        self._detectors = []


class KeypointRefiner:
    """Precise keypoints for one face: short-range BlazeFace on its neighbourhood at a fixed scale.

    Args:
        crop_px: the neighbourhood (the face box plus ``margin`` on every
            side) is scaled to this size before detection; small faces
            are scaled up, which is where the whole-frame keypoints are worst.
        margin: context around the face box, as a fraction of its size.
        min_score: the short-range model's detection threshold.
        cache: model cache folder (default: ``analyzer models fetch``'s).

    Example:
        >>> refiner = KeypointRefiner()  # doctest: +SKIP
        >>> keypoints = refiner.refine(rgb_frame, np.array([600, 200, 680, 280]))  # doctest: +SKIP
    """

    def __init__(
        self, crop_px: int = 160, margin: float = 0.6, min_score: float = 0.3, cache: Path | None = None
    ) -> None:
        self._detector = _create(model_file("short_range", cache), video=False, min_score=min_score)
        self.crop_px = crop_px
        self.margin = margin

    def refine(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        """(6, 2) keypoints in frame pixels of the face in ``box`` (x1, y1, x2, y2), or None if not found."""
        import cv2

        x1, y1, x2, y2 = (float(v) for v in box)
        side = max(x2 - x1, y2 - y1, 1.0) * (1 + 2 * self.margin)
        centre_x, centre_y = (x1 + x2) / 2, (y1 + y2) / 2
        scale = self.crop_px / side
        # Crop, scale and pad (repeating the border) in one warp: the face sits in the middle at a fixed size.
        matrix = np.array(
            [[scale, 0, self.crop_px / 2 - scale * centre_x], [0, scale, self.crop_px / 2 - scale * centre_y]]
        )
        crop = cv2.warpAffine(
            frame, matrix, (self.crop_px, self.crop_px), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        result = self._detector.detect(_to_mp_image(crop))  # type: ignore[attr-defined]
        faces = _mediapipe_faces(result, self.crop_px, self.crop_px)
        if not len(faces):
            return None
        centres = (faces.boxes[:, :2] + faces.boxes[:, 2:]) / 2
        nearest = int(np.argmin(np.linalg.norm(centres - self.crop_px / 2, axis=1)))
        if np.linalg.norm(centres[nearest] - self.crop_px / 2) > 0.25 * self.crop_px:
            return None  # what it found is a neighbour, not this face
        return (faces.keypoints[nearest] - matrix[:, 2]) / scale

    def close(self) -> None:
        """Release the MediaPipe graph (quietly: call it when no other thread writes to stderr)."""
        _close_quietly([self._detector])
