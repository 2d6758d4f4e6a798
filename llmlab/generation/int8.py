"""Moved to `llmlab.models.int8` (model code: W8A8 linear layers); this name keeps old imports working."""

from llmlab.models.int8 import (  # noqa: F401
    ALPHA,
    CALIBRATION_TEXT,
    Int8Linear,
    activation_maxima,
    calibration_ids,
    int8_supported,
    smooth_scales,
)
