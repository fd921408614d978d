"""The embedded demo clip: a shop entrance with walkers, made on first run.

It is built only from material that installs with the package (scikit-image's
public-domain astronaut photo), so a newcomer sees real MediaPipe detections,
real classification and real counts on an offline box.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from analyzer.service.model_assets import cache_folder
from analyzer.tools.scene import FacePatch, draw_person, entrance_background

DEMO_VERSION = 2
#: Where the face is in skimage.data.astronaut() (x, y, w, h), found by BlazeFace.
ASTRONAUT_FACE = (177, 82, 95, 95)


@dataclass(frozen=True)
class DemoWalker:
    """One person in the demo clip (ground truth for tests)."""

    enter_s: float
    leave_s: float
    start_x: float
    end_x: float
    face_px: float
    mirrored: bool


def demo_walkers(seconds: float, count: int, width: int, seed: int) -> list[DemoWalker]:
    """Walkers spread over the clip, left to right, some in view at the same time.

    All walk the same way: every walker is the same photo, so two of them
    crossing would be a puzzle no colour or motion cue could settle.
    """
    rng = np.random.default_rng(seed)
    walkers = []
    slot = seconds / (count + 0.5)
    for index in range(count):
        enter = 0.5 + index * slot + rng.uniform(0, slot * 0.3)
        duration = rng.uniform(3.0, 4.5)
        start, end = -0.05 * width, 1.05 * width
        walkers.append(
            DemoWalker(
                enter_s=round(enter, 2),
                leave_s=round(min(enter + duration, seconds - 0.2), 2),
                start_x=start,
                end_x=end,
                face_px=float(rng.uniform(100, 150)),
                mirrored=bool(index % 3 == 1),
            )
        )
    return walkers


def render_demo(
    path: Path,
    seconds: float = 24.0,
    fps: int = 15,
    size: tuple[int, int] = (1280, 720),
    walkers: int = 6,
    seed: int = 0,
) -> list[DemoWalker]:
    """Write the demo clip to ``path`` (mp4) and its ground truth next to it."""
    from skimage import data

    width, height = size
    photo = data.astronaut()
    face = FacePatch.from_photo(photo, ASTRONAUT_FACE)
    mirrored_face = FacePatch(
        np.ascontiguousarray(face.rgb[:, ::-1]),
        np.ascontiguousarray(face.alpha[:, ::-1]),
        (1 - face.face_box[0] - face.face_box[2], *face.face_box[1:]),
    )
    people = demo_walkers(seconds, walkers, width, seed)
    background = entrance_background(width, height, seed)
    rng = np.random.default_rng(seed)
    clothes = [tuple(int(c) for c in rng.integers(40, 220, 3)) for _ in people]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial.mp4")
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write mp4 video to {partial}")
    for index in range(int(seconds * fps)):
        t = index / fps
        canvas = background.copy()
        for person, colour in zip(people, clothes, strict=True):
            if not person.enter_s <= t <= person.leave_s:
                continue
            progress = (t - person.enter_s) / (person.leave_s - person.enter_s)
            centre_x = person.start_x + (person.end_x - person.start_x) * progress
            face_top = height * 0.22 + 6 * np.sin(t * 6)
            draw_person(
                canvas, mirrored_face if person.mirrored else face, centre_x, face_top, person.face_px, colour, t * 6
            )
        noise = rng.normal(0, 3, canvas.shape)
        frame = np.clip(canvas + noise, 0, 255).astype(np.uint8)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    partial.replace(path)
    path.with_suffix(".json").write_text(json.dumps([asdict(p) for p in people], indent=2))
    return people


def demo_clip() -> Path:
    """Path of the demo clip, rendering it on first use."""
    path = cache_folder("demo") / f"entrance-demo-v{DEMO_VERSION}.mp4"
    if not path.is_file():
        print(f"making the demo clip (first run only): {path}")
        render_demo(path)
    return path
