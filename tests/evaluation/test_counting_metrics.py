import math

import pytest

from leanvision.core import DataError
from leanvision.evaluation.counting import counting_metrics


def test_hand_computed_case():
    m = counting_metrics([12, 7, 0], [10, 10, 2])
    assert m.mae == pytest.approx((2 + 3 + 2) / 3)
    assert m.rmse == pytest.approx(math.sqrt((4 + 9 + 4) / 3))
    assert m.nae == pytest.approx((2 / 10 + 3 / 10 + 2 / 2) / 3)


def test_nae_skips_images_with_no_people_but_mae_does_not():
    m = counting_metrics([3, 11], [0, 10])
    assert m.nae == pytest.approx(0.1) and m.nae_images == 1
    assert m.mae == pytest.approx(2.0) and m.images == 2


def test_nae_is_nan_when_every_image_is_empty():
    assert math.isnan(counting_metrics([1.0], [0.0]).nae)


def test_bad_input():
    with pytest.raises(DataError, match="one predicted and one true count"):
        counting_metrics([1, 2], [1])
    with pytest.raises(DataError, match="no images"):
        counting_metrics([], [])
