"""The contract between a trained network file and the runtime.

Everything the runtime needs to feed the network and read its outputs lives in
the ONNX file's ``metadata_props``, so a model file is self-describing: input
size, normalisation, fine age bins, gender labels and the alignment template
it was trained with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analyzer.core.preprocess import ALIGNMENT_TEMPLATE, Normalization
from analyzer.errors import ModelError

METADATA_SCHEMA = "footfall-model/1"
#: ONNX metadata key of a face likeness model (``analyzer export`` writes one beside each network).
LIKENESS_PROPS = "footfall.likeness"
INPUT_NAME = "chips"
AGE_OUTPUT = "age_probs"
GENDER_OUTPUT = "gender_probs"


def check_model_file(model_path: Path) -> None:
    """A ``ModelError`` that says what to pass when ``model_path`` is not a file (missing, or the models' folder)."""
    if model_path.is_dir():
        networks = sorted(
            str(path) for path in model_path.glob("*.onnx") if not path.name.endswith((".fp16.onnx", ".likeness.onnx"))
        )
        choice = f"one of its networks: {', '.join(networks)}" if networks else "the .onnx file of a network"
        raise ModelError(f"{model_path} is a folder; pass {choice}")
    if not model_path.is_file():
        raise ModelError(
            f"{model_path}: model file not found; pass --model engines/<model>.onnx "
            "or set classifier.model in the config"
        )


def open_session(model_path: Path, threads: int, providers: list[str] | None = None) -> Any:
    """An ONNX Runtime session of ``model_path``, or one clear ``ModelError`` if it cannot be loaded.

    Its threads sleep between calls instead of spinning: the calls are short and far apart, and a spinning
    thread takes the core a camera needs to decode (docs/PERFORMANCE.md).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(
            str(model_path), sess_options=options, providers=providers or ["CPUExecutionProvider"]
        )
    except Exception as error:  # ORT raises several private exception types
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(f"{model_path}: not a loadable ONNX model ({first_line})") from None


@dataclass(frozen=True)
class ModelMetadata:
    """What ``analyzer export`` embeds and every backend reads back."""

    input_size: int
    normalization: Normalization
    age_bin_edges: tuple[float, ...]
    gender_labels: tuple[str, ...]
    version: str
    training_data: str
    precision: str = "fp32"
    alignment_template: tuple[tuple[float, float], ...] = field(
        default_factory=lambda: tuple(map(tuple, ALIGNMENT_TEMPLATE.tolist()))
    )

    @property
    def age_bin_values(self) -> np.ndarray:
        """Age each fine bin stands for: the mean whole-year age it holds.

        Labels are whole years, so bin ``[25, 26)`` stands for 25; the open last
        bin stands for its lower edge.
        """
        edges = np.asarray(self.age_bin_edges, dtype=np.float64)
        values = edges.copy()
        values[:-1] += (np.diff(edges) - 1) / 2
        return values

    def to_props(self) -> dict[str, str]:
        """String key/values for ONNX ``metadata_props``."""
        return {
            "footfall.schema": METADATA_SCHEMA,
            "footfall.input": json.dumps(
                {"name": INPUT_NAME, "size": self.input_size, "layout": "NCHW", "color": "RGB"}
            ),
            "footfall.normalization": json.dumps(
                {
                    "formula": "(pixel / 255 - mean) / std",
                    "mean": list(self.normalization.mean),
                    "std": list(self.normalization.std),
                }
            ),
            "footfall.outputs": json.dumps({"age": AGE_OUTPUT, "gender": GENDER_OUTPUT}),
            "footfall.age_bin_edges": json.dumps(list(self.age_bin_edges)),
            "footfall.gender_labels": json.dumps(list(self.gender_labels)),
            "footfall.alignment_template": json.dumps([list(p) for p in self.alignment_template]),
            "footfall.version": self.version,
            "footfall.training_data": self.training_data,
            "footfall.precision": self.precision,
        }

    @classmethod
    def from_props(cls, props: dict[str, str], source: Path | str) -> ModelMetadata:
        """Parse and check metadata; errors name the file and the key."""
        schema = props.get("footfall.schema")
        if schema is None and LIKENESS_PROPS in props:
            raise ModelError(
                f"{source}: this is a face likeness model (for tracker.likeness_model), not the age and gender "
                "network; point at the .onnx file `analyzer export` writes beside it (engines/agegender.onnx)"
            )
        if schema != METADATA_SCHEMA:
            raise ModelError(
                f"{source}: not a footfall analyzer model (metadata footfall.schema is "
                f"{schema!r}, expected {METADATA_SCHEMA!r}); export one with `analyzer export`"
            )

        def field_json(key: str) -> object:
            try:
                return json.loads(props[key])
            except KeyError:
                raise ModelError(f"{source}: metadata key {key} is missing; re-export the model") from None
            except json.JSONDecodeError as error:
                raise ModelError(f"{source}: metadata key {key} is not valid JSON ({error})") from None

        model_input = field_json("footfall.input")
        normalization = field_json("footfall.normalization")
        edges = field_json("footfall.age_bin_edges")
        genders = field_json("footfall.gender_labels")
        template = field_json("footfall.alignment_template")
        try:
            metadata = cls(
                input_size=int(model_input["size"]),  # type: ignore[index]
                normalization=Normalization(
                    tuple(normalization["mean"]),  # type: ignore[index]
                    tuple(normalization["std"]),  # type: ignore[index]
                ),
                age_bin_edges=tuple(float(edge) for edge in edges),  # type: ignore[union-attr]
                gender_labels=tuple(str(label) for label in genders),  # type: ignore[union-attr]
                version=props.get("footfall.version", "unknown"),
                training_data=props.get("footfall.training_data", "unknown"),
                precision=props.get("footfall.precision", "fp32"),
                alignment_template=tuple(tuple(map(float, point)) for point in template),  # type: ignore[union-attr]
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ModelError(f"{source}: metadata is malformed ({error!r}); re-export the model") from None
        metadata.check(source)
        return metadata

    def check(self, source: Path | str) -> None:
        """Reject metadata the runtime cannot honour."""
        edges = np.asarray(self.age_bin_edges)
        if len(edges) < 2 or edges[0] != 0 or np.any(np.diff(edges) <= 0):
            raise ModelError(f"{source}: age_bin_edges must start at 0 and increase, got {list(edges)}")
        if set(self.gender_labels) != {"female", "male"} or len(self.gender_labels) != 2:
            raise ModelError(f"{source}: gender_labels must be female and male, got {self.gender_labels}")
        if not 16 <= self.input_size <= 512:
            raise ModelError(f"{source}: input size {self.input_size} is outside 16..512")
        if len(self.normalization.mean) != 3 or len(self.normalization.std) != 3:
            raise ModelError(f"{source}: normalization needs 3 means and 3 stds")
        if not np.allclose(np.asarray(self.alignment_template), ALIGNMENT_TEMPLATE, atol=1e-6):
            raise ModelError(
                f"{source}: the model was trained with a different face alignment template "
                "than this analyzer uses; retrain or use a matching analyzer version"
            )
