"""``analyzer simulate``: a synthetic store entrance with known ground truth.

Visitors are real labelled face photos on simple figures that walk through a
side view of a shop entrance: the street on the left, the shop on the right,
the door's threshold (the counting line) in the middle. People farther from
the camera are higher in the frame and smaller (faces 30-250 px at 720p);
nearer people are drawn later and hide those behind them. Some enter, some
leave, some pass by outside, some pause in the display zone or queue; they
turn away for a moment, walk fast enough to blur, and the light changes.
In the ``cafe`` scenario most visitors walk in and sit at a table for one to
four minutes, swaying a little and looking away now and then, as seated
people do. ``wall_faces`` hangs faces that never visit: two framed posters and
a signage screen showing a new face every ``SCREEN_SLIDE_S``; the truth lists
them as ``fixtures``. A visitor who looks away shows the back of their head.
Everything is decided by the seed, so a clip and its truth are reproducible
(the wall's faces by a seed of their own, so the other scenarios draw as before).

The line and zone used here are :data:`SIM_LINE` and :data:`SIM_ZONE`;
``configs/simulated.yaml`` uses the same geometry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from analyzer.core.zones import CountingLine, Zone
from analyzer.datasets.face_photos import read_rgb
from analyzer.datasets.labels import LabelledFace, read_labels
from analyzer.errors import DataError
from analyzer.pipeline.detect import PhotoFaceFinder
from analyzer.tools.evaluation import select_split
from analyzer.tools.scene import FacePatch, draw_person, entrance_background

SCENARIOS = ("entrance", "pass-by", "queue", "crowd", "cafe")
TRUTH_SCHEMA = "footfall-truth/1"
#: Raised whenever the same seed would draw a different clip, so cached clips are redrawn.
SIMULATOR_VERSION = 3
#: Raised when only one scenario's plan changes, so only that scenario's cached clips are redrawn.
SCENARIO_REVISIONS = {"cafe": 1}
#: The door threshold: start at the bottom, end at the top; its right-hand side (the shop) is "in".
SIM_LINE = CountingLine(start=(0.5, 1.0), end=(0.5, 0.0))
#: A display area inside the shop where people linger.
SIM_ZONE = Zone("display", ((0.6, 0.0), (0.95, 0.0), (0.95, 1.0), (0.6, 1.0)))
#: A visitor is expected to be counted when their face was visible for at least
#: COUNTABLE_SECONDS at COUNTABLE_FACE_PX or more: the detector's limit with 2x2
#: tiles at 720p (DESIGN.md: ~60 px at 1080p). Smaller faces are in the clip
#: (from 30 px) but not in the expected count; 3x3 tiles find many of them.
COUNTABLE_FACE_PX = 40
#: Places in the queue scenario's line, from the counter back towards the door.
QUEUE_SLOTS = 5
COUNTABLE_SECONDS = 1.0
#: Tables of the cafe scenario: (x, depth) where a customer sits, in the shop on the right. A back row
#: and a front row between its seats: a camera placed to measure dwell sees every seat, and no seated face is
#: more than an eighth behind another seated customer (walkers still pass in front).
CAFE_TABLES = ((0.57, 0.35), (0.74, 0.3), (0.92, 0.35), (0.65, 0.7), (0.84, 0.65))
#: How long a signage screen shows each face: digital signage cycles its stills every half a minute or more.
SCREEN_SLIDE_S = 45.0
#: The wall's faces: (x1, y1, x2, y2) fractions of the frame, over the street-side shelves and beside the door.
POSTER_BOXES = ((0.07, 0.04, 0.16, 0.2), (0.285, 0.05, 0.355, 0.17))
SCREEN_BOX = (0.77, 0.03, 0.94, 0.2)


@dataclass
class Walker:
    """The plan of one simulated visitor.

    ``waypoints`` are (seconds, x as fraction of width, depth 0 far .. 1 near).
    """

    visitor_id: int
    face: LabelledFace
    waypoints: list[tuple[float, float, float]]
    turned_away: list[tuple[float, float]] = field(default_factory=list)
    clothes: tuple[int, int, int] = (90, 90, 90)
    kind: str = "enter"

    @property
    def start(self) -> float:
        """First planned second."""
        return self.waypoints[0][0]

    @property
    def end(self) -> float:
        """Last planned second."""
        return self.waypoints[-1][0]

    def position(self, t: float) -> tuple[float, float, float]:
        """(x, depth, speed in widths per second) at ``t``, linear between waypoints."""
        times = [point[0] for point in self.waypoints]
        index = int(np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2))
        (t0, x0, d0), (t1, x1, d1) = self.waypoints[index], self.waypoints[index + 1]
        fraction = 0.0 if t1 <= t0 else float(np.clip((t - t0) / (t1 - t0), 0.0, 1.0))
        speed = 0.0 if t1 <= t0 else abs(x1 - x0) / (t1 - t0)
        return x0 + (x1 - x0) * fraction, d0 + (d1 - d0) * fraction, speed

    def facing_camera(self, t: float) -> bool:
        """False while the visitor looks away (face not drawn)."""
        return not any(t0 <= t < t1 for t0, t1 in self.turned_away)


def simulator_version(scenario: str) -> int | str:
    """What a clip of ``scenario`` records as drawn by: ``SIMULATOR_VERSION``, with the scenario's revision if any."""
    revision = SCENARIO_REVISIONS.get(scenario)
    return SIMULATOR_VERSION if revision is None else f"{SIMULATOR_VERSION}.{scenario}{revision}"


def face_px_at(depth: float, height: int) -> float:
    """Face width in pixels for a depth 0 (far) .. 1 (near), at frame height ``height``."""
    return (30.0 + 220.0 * depth**1.3) * height / 720.0


def face_top_at(depth: float, height: int) -> float:
    """Top of the face in pixels: far people stand higher in the frame."""
    return height * (0.12 + 0.2 * depth)


def _walk(rng: np.random.Generator, t: float, x0: float, x1: float, depth: float) -> list[tuple[float, float, float]]:
    speed = rng.uniform(0.1, 0.28)  # frame widths per second (about 0.8-2 m/s)
    return [(t, x0, depth), (t + abs(x1 - x0) / speed, x1, depth + rng.uniform(-0.08, 0.08))]


def plan_walkers(
    faces: list[LabelledFace], scenario: str, visitors: int, seconds: float, rng: np.random.Generator
) -> list[Walker]:
    """Paths for ``visitors`` people over ``seconds`` in the given scenario."""
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario '{scenario}' is not one of {', '.join(SCENARIOS)}")
    walkers: list[Walker] = []
    places = len(CAFE_TABLES) if scenario == "cafe" else QUEUE_SLOTS
    queue_taken: list[list[tuple[float, float]]] = [[] for _ in range(places)]  # (from, to) per place
    for visitor_id in range(visitors):
        face = faces[int(rng.integers(len(faces)))]
        depth = float(rng.uniform(0.0, 0.9))
        start = float(rng.uniform(0.0, max(seconds - 8.0, 1.0)))
        if scenario == "crowd":
            start = float(rng.uniform(0.0, max(seconds * 0.6, 1.0)))
        kind = str(rng.choice(["enter", "enter", "leave", "pass-by"], p=[0.45, 0.2, 0.2, 0.15]))
        if scenario == "pass-by":
            kind = "pass-by" if rng.random() < 0.6 else "enter"
        if scenario == "queue" and kind == "enter":
            kind = "queue"
        if scenario == "cafe":  # most come in for a coffee; the others walk through, leave or pass by
            kind = "sit" if rng.random() < 0.75 else kind
        if kind == "enter":
            if rng.random() < 0.35:  # walks in, pauses at the display, walks on
                stop_x = float(rng.uniform(0.62, 0.9))
                points = _walk(rng, start, -0.08, stop_x, depth)
                t, x, d = points[-1]
                resume = t + float(rng.uniform(1.0, 5.0))
                points += [(resume, x, d), *_walk(rng, resume, x, 1.08, d)[1:]]
            else:
                points = _walk(rng, start, -0.08, 1.08, depth)
        elif kind == "leave":
            points = _walk(rng, start, 1.08, -0.08, depth)
        elif kind == "queue":
            speed, wait = float(rng.uniform(0.1, 0.28)), float(rng.uniform(5.0, 15.0))
            slot, arrival = _free_place(queue_taken, start, speed, wait, _queue_spot)
            x, d = _queue_spot(slot)
            leave = arrival + wait
            points = [(arrival - (x + 0.08) / speed, -0.08, d), (arrival, x, d), (leave, x + 0.01, d)]
            points.append((leave + (1.08 - x) / speed, 1.08, d))
        elif kind == "sit":  # walks in, sits at a table for one to four minutes, then walks out
            speed, stay = float(rng.uniform(0.1, 0.28)), float(rng.uniform(60.0, 240.0))
            table, arrival = _free_place(queue_taken, start, speed, stay, _table_spot)
            x, d = _table_spot(table)
            points = [(arrival - (x + 0.08) / speed, -0.08, d), (arrival, x, d)]
            for t in np.arange(arrival + 3.0, arrival + stay, 3.0):  # seated people sway and shift a little
                points.append((float(t), x + float(rng.uniform(-0.006, 0.006)), d + float(rng.uniform(-0.01, 0.01))))
            leave = arrival + stay
            points += [(leave, x, d), (leave + (1.08 - x) / speed, 1.08, d)]
        else:  # pass-by: along the street outside, turning back before the door
            turn_x = float(rng.uniform(0.25, 0.42))
            there = _walk(rng, start, -0.08, turn_x, depth)
            back = _walk(rng, there[-1][0] + float(rng.uniform(0.3, 1.5)), turn_x, -0.08, there[-1][2])
            points = [*there, *back]
        points = [(t, x, float(np.clip(d, 0.0, 1.0))) for t, x, d in points]
        turned = []
        if rng.random() < 0.3:  # looks away briefly (a miss the tracker must bridge)
            at = float(rng.uniform(points[0][0] + 1.0, max(points[-1][0] - 1.0, points[0][0] + 1.1)))
            turned.append((at, at + float(rng.uniform(0.3, 1.0))))
        if kind == "sit":  # at the table: turns to a friend or the counter every half a minute or so
            for at in np.arange(points[1][0] + 10.0, points[-2][0] - 5.0, float(rng.uniform(20.0, 40.0))):
                turned.append((float(at), float(at) + float(rng.uniform(0.5, 2.5))))
        clothes = tuple(int(c) for c in rng.integers(30, 230, 3))
        walkers.append(Walker(visitor_id, face, points, turned, clothes, kind))  # type: ignore[arg-type]
    return walkers


def _queue_spot(slot: int) -> tuple[float, float]:
    """(x, depth) of a queue place: place 0 nearest the door, later ones further in and nearer the camera."""
    return 0.62 + 0.06 * slot, 0.35 + 0.1 * slot


def _table_spot(table: int) -> tuple[float, float]:
    """(x, depth) of a cafe table's seat."""
    return CAFE_TABLES[table]


def _free_place(
    taken: list[list[tuple[float, float]]],
    start: float,
    speed: float,
    wait: float,
    spot: Callable[[int], tuple[float, float]],
) -> tuple[int, float]:
    """The place (a queue's, a table's) and arrival time of someone setting off at ``start``: one person per place.

    The first place free for the whole wait is taken; when all are taken, the
    person comes a little later. ``taken`` (one list per place) is updated.
    """
    for delay in np.arange(0.0, 600.0, 1.0):
        for slot in range(len(taken)):
            arrival = start + delay + (spot(slot)[0] + 0.08) / speed
            span = (arrival - 1.0, arrival + wait + 1.0)
            if all(span[1] <= begin or span[0] >= end for begin, end in taken[slot]):
                taken[slot].append(span)
                return slot, arrival
    raise RuntimeError("no place ever frees")  # unreachable for plausible clip lengths


class WallFaces:
    """Faces that never visit: two framed posters and a signage screen cycling still faces.

    They take the global light change and noise like everything else, and
    nothing else: a photo does not sway. Their faces come from the clip's
    own face set, by a seed of their own.
    """

    def __init__(self, faces: list[LabelledFace], seed: int, size: tuple[int, int]) -> None:
        rng = np.random.default_rng(seed + 7919)
        picked = [faces[int(index)] for index in rng.integers(len(faces), size=len(POSTER_BOXES) + 8)]
        self.size = size
        self.posters = [(box, read_rgb(face.path)) for box, face in zip(POSTER_BOXES, picked, strict=False)]
        self.slides = [read_rgb(face.path) for face in picked[len(POSTER_BOXES) :]]

    def _pixels(self, box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
        width, height = self.size
        return round(box[0] * width), round(box[1] * height), round(box[2] * width), round(box[3] * height)

    def draw(self, canvas: np.ndarray, t: float) -> None:
        """The posters, and the screen's slide at ``t``, on ``canvas``."""
        for box, photo in self.posters:
            self._hang(canvas, box, photo, frame=(230, 225, 215))
        slide = self.slides[int(t // SCREEN_SLIDE_S) % len(self.slides)]
        self._hang(canvas, SCREEN_BOX, slide, frame=(25, 25, 28))

    def _hang(
        self, canvas: np.ndarray, box: tuple[float, float, float, float], photo: np.ndarray, frame: tuple[int, int, int]
    ) -> None:
        x1, y1, x2, y2 = self._pixels(box)
        border = max((x2 - x1) // 14, 2)
        cv2.rectangle(canvas, (x1 - border, y1 - border), (x2 + border, y2 + border), frame, -1)
        side = min(x2 - x1, y2 - y1)
        left, top = x1 + (x2 - x1 - side) // 2, y1 + (y2 - y1 - side) // 2
        canvas[y1:y2, x1:x2] = frame if frame[0] > 128 else (10, 10, 12)
        canvas[top : top + side, left : left + side] = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA)

    def truth(self, seconds: float) -> list[dict[str, object]]:
        """The fixtures for the truth file: each kind and box (fractions)."""
        slides = max(int(np.ceil(seconds / SCREEN_SLIDE_S)), 1)
        return [{"kind": "poster", "box": list(box)} for box, _ in self.posters] + [
            {"kind": "screen", "box": list(SCREEN_BOX), "slides": slides, "slide_s": SCREEN_SLIDE_S}
        ]


@dataclass
class _Observed:
    frames: list[int] = field(default_factory=list)
    boxes: list[list[float]] = field(default_factory=list)
    path: list[list[float]] = field(default_factory=list)


Box = tuple[float, float, float, float]


def covered_share(box: Box, blockers: list[Box]) -> float:
    """The largest share of ``box`` one of ``blockers`` (a nearer figure's face or body) covers."""
    x1, y1, x2, y2 = box
    area = max((x2 - x1) * (y2 - y1), 1.0)
    overlaps = [
        max(0.0, min(x2, bx2) - max(x1, bx1)) * max(0.0, min(y2, by2) - max(y1, by1)) for bx1, by1, bx2, by2 in blockers
    ]
    return max(overlaps, default=0.0) / area


def figure_boxes(face_box: Box, face_px: float) -> list[Box]:
    """What a drawn figure hides of anyone behind it: its face, and its body below the face."""
    centre = (face_box[0] + face_box[2]) / 2
    return [face_box, (centre - 1.3 * face_px, face_box[3], centre + 1.3 * face_px, face_box[3] + 4 * face_px)]


def _occluded(box: Box, blockers: list[Box]) -> bool:
    """More than a quarter of ``box`` hidden behind one nearer figure (the detector loses such faces)."""
    return covered_share(box, blockers) > 0.25


#: Faces the detector finds spanning less of their photo's width than this, in the median, make
#: a folder of photos with surroundings (real-world photos), not of tight face crops (UTKFace: 0.95).
CROP_FACE_SHARE = 0.6


def _head_patches(walkers: list[Walker]) -> tuple[dict[int, FacePatch], set[int]]:
    """The head to draw for each visitor, and the visitors whose face could not be located.

    A tight face crop is drawn whole, a wider photo cut around its face.

    Pasting a photo with surroundings whole would draw its face a fraction of
    the intended size inside a patch of background, and the truth box would
    cover the patch, not the face. The kind is decided for the folder, from the
    median over its photos: the detector also "finds" small faces in a few
    tight crops (an eye, a mouth), which must not be cut out of them. A wider
    photo whose face the detector cannot find is drawn whole; where its face
    is, is unknown, so that visitor is not expected in the count.
    """
    photos = {walker.visitor_id: read_rgb(walker.face.path) for walker in walkers}
    finder = PhotoFaceFinder()
    try:
        found = {visitor_id: finder.find(photo) for visitor_id, photo in photos.items()}
    finally:
        finder.close()
    shares = [
        float(faces.boxes[0, 2] - faces.boxes[0, 0]) / photos[visitor_id].shape[1]
        for visitor_id, faces in found.items()
        if len(faces)
    ]
    if not shares or float(np.median(shares)) >= CROP_FACE_SHARE:
        return {visitor_id: FacePatch.from_crop(photo) for visitor_id, photo in photos.items()}, set()
    patches, unlocated = {}, set()
    for visitor_id, photo in photos.items():
        faces = found[visitor_id]
        if len(faces):
            x1, y1, x2, y2 = (round(float(v)) for v in faces.boxes[0])
            patches[visitor_id] = FacePatch.from_photo(photo, (x1, y1, x2 - x1, y2 - y1))
        else:
            patches[visitor_id] = FacePatch.from_crop(photo)
            unlocated.add(visitor_id)
    return patches, unlocated


def simulate(
    faces_dir: Path,
    out: Path,
    truth_path: Path,
    visitors: int = 20,
    seconds: float = 60.0,
    size: tuple[int, int] = (1280, 720),
    fps: int = 15,
    seed: int = 0,
    scenario: str = "entrance",
    progress: object | None = None,
    split: str = "all",
    wall_faces: bool = False,
) -> dict[str, object]:
    """Render the clip and write its truth; returns the truth document.

    ``split`` picks faces from one side of the md5 split (``validation`` keeps
    the network's training faces out of an accuracy measurement).
    ``wall_faces`` hangs two posters and a signage screen with faces (truth: ``fixtures``).
    """
    rng = np.random.default_rng(seed)
    on_side = select_split(read_labels(faces_dir), split)
    faces = [face for face in on_side if face.path.is_file()]
    if not faces:
        raise DataError(f"{faces_dir}: none of the {len(on_side)} images its labels.csv lists is there")
    walkers = plan_walkers(faces, scenario, visitors, seconds, rng)
    width, height = size
    patches, unlocated = _head_patches(walkers)
    background = entrance_background(width, height, seed)
    wall = WallFaces(faces, seed, size) if wall_faces else None
    noise_bank = [rng.normal(0, 1, (height, width, 3)).astype(np.float32) for _ in range(4)]
    observed = {walker.visitor_id: _Observed() for walker in walkers}
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {out}")
    light_phase = rng.uniform(0, 2 * np.pi)
    frames = int(seconds * fps)
    for index in range(frames):
        t = index / fps
        canvas = background.copy()
        if wall is not None:
            wall.draw(canvas, t)
        present = [w for w in walkers if w.start <= t <= w.end]
        present.sort(key=lambda w: w.position(t)[1])  # far first, near last
        drawn: list[tuple[Walker, tuple[float, float, float, float], bool, float]] = []
        for walker in present:
            x, depth, speed = walker.position(t)
            face_px = face_px_at(depth, height)
            patch = patches[walker.visitor_id]
            facing = walker.facing_camera(t)
            if not facing:
                patch = FacePatch(np.full_like(patch.rgb, (60, 45, 35)), patch.alpha, patch.face_box)
            elif speed * width / fps > 6:  # fast walkers blur along the walk
                length = int(min(speed * width / fps / 3, 9)) | 1
                kernel = np.zeros((length, length), np.float32)
                kernel[length // 2] = 1.0 / length
                patch = FacePatch(cv2.filter2D(patch.rgb, -1, kernel), patch.alpha, patch.face_box)
            box = draw_person(canvas, patch, x * width, face_top_at(depth, height), face_px, walker.clothes, t * 7)
            drawn.append((walker, box, facing, face_px))
        for position, (walker, box, facing, face_px) in enumerate(drawn):
            nearer = [part for _, other, _, other_px in drawn[position + 1 :] for part in figure_boxes(other, other_px)]
            inside = box[0] >= -0.1 * face_px and box[2] <= width + 0.1 * face_px and box[1] >= 0 and box[3] <= height
            record = observed[walker.visitor_id]
            centre_x, centre_y = (box[0] + box[2]) / 2 / width, (box[1] + box[3]) / 2 / height
            record.path.append([round(t, 3), round(centre_x, 4), round(centre_y, 4), round(face_px, 1)])
            if facing and inside and not _occluded(box, nearer):
                record.frames.append(index)
                record.boxes.append([index, *(round(v, 1) for v in box)])
        gain = 1.0 + 0.2 * np.sin(2 * np.pi * t / 23.0 + light_phase)
        frame = canvas.astype(np.float32) * gain + noise_bank[index % 4] * 3.0
        frame_u8 = np.clip(frame, 0, 255).astype(np.uint8)
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(frame_u8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 70])
        writer.write(cv2.imdecode(encoded, cv2.IMREAD_COLOR) if ok else cv2.cvtColor(frame_u8, cv2.COLOR_RGB2BGR))
        if progress is not None:
            progress(1)  # type: ignore[operator]
    writer.release()
    truth = _truth_document(walkers, observed, faces_dir, out, fps, size, seed, scenario, seconds, unlocated)
    truth["faces_split"] = split
    truth["fixtures"] = wall.truth(seconds) if wall is not None else []
    truth_path.parent.mkdir(parents=True, exist_ok=True)
    truth_path.write_text(json.dumps(truth, indent=1))
    return truth


def _truth_document(
    walkers: list[Walker],
    observed: dict[int, _Observed],
    faces_dir: Path,
    clip: Path,
    fps: int,
    size: tuple[int, int],
    seed: int,
    scenario: str,
    seconds: float,
    unlocated: set[int],
) -> dict[str, object]:
    visitors = []
    for walker in walkers:
        record = observed[walker.visitor_id]
        seen_s = (record.frames[-1] - record.frames[0]) / fps if record.frames else 0.0
        big_frames = [box[0] for box in record.boxes if box[3] - box[1] >= COUNTABLE_FACE_PX]
        big_enough = bool(big_frames) and (big_frames[-1] - big_frames[0]) / fps >= COUNTABLE_SECONDS
        anchors = [(point[1], point[2]) for point in record.path]
        times = [point[0] for point in record.path]
        crossings = SIM_LINE.crossings(anchors, times, hysteresis=0.02)
        visitors.append(
            {
                "id": walker.visitor_id,
                "kind": walker.kind,
                "face": str(walker.face.path.relative_to(faces_dir)),
                "age": walker.face.age,
                "gender": walker.face.gender,
                "race": walker.face.race,
                "start_s": record.frames[0] / fps if record.frames else None,
                "end_s": record.frames[-1] / fps if record.frames else None,
                "seen_s": round(seen_s, 3),
                "countable": bool(record.frames)
                and seen_s >= COUNTABLE_SECONDS
                and big_enough
                and walker.visitor_id not in unlocated,
                "face_located": walker.visitor_id not in unlocated,
                "direction": crossings[0][0] if crossings else None,
                "crossings": [{"direction": d, "t": round(t, 3)} for d, t in crossings],
                "zone_dwell_s": round(SIM_ZONE.dwell(anchors, times), 3),
                "path": record.path[:: max(fps // 5, 1)],
                "boxes": record.boxes,
            }
        )
    return {
        "schema": TRUTH_SCHEMA,
        "simulator_version": simulator_version(scenario),
        "clip": str(clip),
        "faces": str(faces_dir),
        "fps": fps,
        "size": list(size),
        "seconds": seconds,
        "seed": seed,
        "scenario": scenario,
        "line": SIM_LINE.to_dict(),
        "zone": SIM_ZONE.to_dict(),
        "visitors": visitors,
    }
