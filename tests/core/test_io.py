"""Output folders given as a symlink (issue 18): refused in one line, nothing left beside them."""

from __future__ import annotations

import pytest

from leanvision.core.errors import ConfigError
from leanvision.core.io import check_output_dir, replace_dir, staging_dir


def test_a_symlink_output_folder_is_refused_before_any_staging(tmp_path):
    (tmp_path / "target").mkdir()
    link = tmp_path / "link"
    link.symlink_to("target")
    with pytest.raises(ConfigError, match="is a symlink"):
        check_output_dir(link, allowed=frozenset(), what="a model")
    with pytest.raises(ConfigError, match=r"the output path is a symlink \(to 'target'\)"), staging_dir(link) as staging:
        replace_dir(staging, link)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "target"]


def test_a_staging_symlink_left_by_an_older_version_is_swept(tmp_path):
    """Before the refusal, swapping a symlink DST left `.link.XXXXXXXX.tmp -> target` forever
    (rmtree ignores a symlink); the next writer of that folder removes it."""
    (tmp_path / "target").mkdir()
    (tmp_path / ".out.abcd1234.tmp").symlink_to("target")
    with staging_dir(tmp_path / "out") as staging:
        (staging / "f").write_text("x")
        replace_dir(staging, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "target"]
