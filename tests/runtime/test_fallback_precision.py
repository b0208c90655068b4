"""The precision `quantize --fallback` chose for layers kept out of INT8 reaches the engine."""

from __future__ import annotations

import json

from leanvision.runtime import PrecisionHint
from leanvision.runtime.load import fallback_precision
from tests.core.test_card import detection_card


def test_the_cards_fallback_precision_is_read_and_anything_else_means_fp32():
    card = detection_card()
    assert fallback_precision(card) is PrecisionHint.FP32
    quantized = card.replace(provenance={"quantization": json.dumps({"fallback_precision": "bf16"})})
    assert fallback_precision(quantized) is PrecisionHint.BF16
    broken = card.replace(provenance={"quantization": "not json"})
    assert fallback_precision(broken) is PrecisionHint.FP32
