"""The ONNX Runtime backend: the reference, and the one CPU boxes run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analyzer.backends.base import FaceAttributes
from analyzer.core.model_meta import (
    AGE_OUTPUT,
    GENDER_OUTPUT,
    INPUT_NAME,
    ModelMetadata,
    check_model_file,
    open_session,
)
from analyzer.errors import ModelError
from analyzer.service.cores import usable_cores


class OnnxRuntimeBackend:
    """CPU (or any ONNX Runtime provider) backend; the reference for parity tests.

    Example:
        >>> backend = OnnxRuntimeBackend(Path("engines/agegender.onnx"))  # doctest: +SKIP
        >>> backend.metadata.input_size  # doctest: +SKIP
        80
    """

    name = "onnxruntime"

    def __init__(self, model_path: Path, threads: int = 0, providers: list[str] | None = None) -> None:
        model_path = Path(model_path)
        check_model_file(model_path)
        self._session = open_session(model_path, threads or min(usable_cores(), 4), providers)
        props = self._session.get_modelmeta().custom_metadata_map
        self.metadata = ModelMetadata.from_props(dict(props), model_path)
        self.path = model_path
        self._check_signature()

    def _check_signature(self) -> None:
        inputs = {tensor.name: tensor for tensor in self._session.get_inputs()}
        outputs = {tensor.name for tensor in self._session.get_outputs()}
        if INPUT_NAME not in inputs or {AGE_OUTPUT, GENDER_OUTPUT} - outputs:
            raise ModelError(
                f"{self.path}: expects input '{INPUT_NAME}' and outputs '{AGE_OUTPUT}', "
                f"'{GENDER_OUTPUT}'; found inputs {list(inputs)} and outputs {sorted(outputs)}"
            )
        shape = inputs[INPUT_NAME].shape
        size = self.metadata.input_size
        if len(shape) != 4 or list(shape[1:]) != [3, size, size]:
            raise ModelError(
                f"{self.path}: input shape {shape} does not match metadata input size [N, 3, {size}, {size}]"
            )
        self._input_type = np.float16 if "float16" in inputs[INPUT_NAME].type else np.float32

    def infer(self, inputs: np.ndarray) -> FaceAttributes:
        """Run one batch."""
        age_probs, gender_probs = self._session.run(
            [AGE_OUTPUT, GENDER_OUTPUT], {INPUT_NAME: inputs.astype(self._input_type, copy=False)}
        )
        return FaceAttributes(np.asarray(age_probs, dtype=np.float32), np.asarray(gender_probs, dtype=np.float32))
