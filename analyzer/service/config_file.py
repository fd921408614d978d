"""Changes the analyzer itself makes to its YAML config: a camera's set-up from the web page, a web password.

The file is the installer's: it is read again at each change (edits made
since the start are kept) and rewritten with ruamel.yaml's round trip, so
its comments, key order, anchors and quoting stay as they were; only the
keys changed are new. The new text goes through the config loader before it
replaces the file, whole (:func:`write_output`), so a refused change leaves
the file untouched and is refused with the loader's own message.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.representer import RoundTripRepresenter

from analyzer.config import Config, config_from_text
from analyzer.core.text_files import read_utf8
from analyzer.errors import ConfigError
from analyzer.service.atomic_files import write_output

Point = Sequence[float]


def _flow(values: Sequence[Any]) -> CommentedSeq:
    """A YAML list written on one line, ``[0.5, 1.0]``, as people write points."""
    seq = CommentedSeq(values)
    seq.fa.set_flow_style()
    return seq


def _point(point: Point) -> CommentedSeq:
    return _flow([round(float(value), 4) for value in point])


def _polygon(polygon: Sequence[Point]) -> CommentedSeq:
    return _flow([_point(point) for point in polygon])


def _null(representer: RoundTripRepresenter, value: None) -> ScalarNode:
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")


class ConfigFile:
    """One YAML config file that the running analyzer may change.

    Example:
        >>> ConfigFile(Path("site.yaml")).set_user("anna", "scrypt$...")  # doctest: +SKIP
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()  # two saves from two browsers: one after the other, each on the other's file

    def _yaml(self) -> YAML:
        yaml = YAML()  # round trip
        yaml.preserve_quotes = True
        yaml.width = 4096  # a long value (a password hash) stays on its key's line
        yaml.representer.add_representer(type(None), _null)  # `key: null` stays written so, not `key:`
        yaml.indent(mapping=2, sequence=4, offset=2)
        return yaml

    def change(self, edit: Callable[[CommentedMap], None]) -> Config:
        """Apply ``edit`` to the file's document; the validated config is returned once the file holds it."""
        with self._lock:
            text = read_utf8(self.path)
            yaml = self._yaml()
            document = yaml.load(text)
            if not isinstance(document, CommentedMap):
                raise ConfigError(f"{self.path}: not a YAML mapping of sections; fix the file by hand")
            edit(document)
            written = io.StringIO()
            yaml.dump(document, written)
            config = config_from_text(written.getvalue(), self.path)
            write_output(self.path, written.getvalue())
            return config

    def camera_entry(self, document: CommentedMap, camera_id: str) -> CommentedMap:
        """The mapping of ``camera_id`` under ``cameras:``; a camera given by ``--source`` has none."""
        for camera in document.get("cameras") or []:
            if isinstance(camera, dict) and camera.get("id") == camera_id:
                return camera
        raise ConfigError(
            f"{self.path}: has no camera '{camera_id}' (it came from --source?); add it under cameras: to keep "
            "its set-up"
        )

    def set_camera_geometry(
        self,
        camera_id: str,
        line: tuple[Point, Point] | None,
        zones: Sequence[tuple[str, Sequence[Point]]],
        masks: Sequence[Sequence[Point]],
    ) -> Config:
        """Give a camera its counting line (start, end), zones (name, polygon) and masks; [] / None remove them.

        A line keeps its other keys (hysteresis, anchor); zones and masks are written anew.
        """

        def edit(document: CommentedMap) -> None:
            camera = self.camera_entry(document, camera_id)
            if line is None:
                camera.pop("line", None)
            else:
                entry = camera.get("line")
                if not isinstance(entry, dict):
                    entry = camera["line"] = CommentedMap()
                entry["start"], entry["end"] = _point(line[0]), _point(line[1])
            for key, value in (
                ("zones", [CommentedMap(name=name, polygon=_polygon(polygon)) for name, polygon in zones]),
                ("masks", [_polygon(mask) for mask in masks]),
            ):
                if value:
                    camera[key] = CommentedSeq(value)
                else:
                    camera.pop(key, None)

        return self.change(edit)

    def set_user(self, name: str, password_hash: str) -> Config:
        """Add or replace a web page user (``web.users.<name>``)."""

        def edit(document: CommentedMap) -> None:
            web = document.get("web")
            if not isinstance(web, dict):
                web = document["web"] = CommentedMap()
            users = web.get("users")
            if not isinstance(users, dict):
                users = web["users"] = CommentedMap()
            users[name] = password_hash

        return self.change(edit)
