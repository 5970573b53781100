"""Pictures a run writes: written aside, so a kill never leaves one that a later step cannot read."""
import os

import numpy as np
import pytest
from PIL import Image

from zoo import images


def test_a_png_that_fails_half_way_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    path = str(tmp_path / "epoch_0001.png")
    images.save_png(np.zeros([4, 4, 3], np.uint8), path)

    def killed(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:
            f.write(b"\x89PNG truncated")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        images.save_png(np.full([4, 4, 3], 255, np.uint8), path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["epoch_0001.png"]
    images.timelapse(str(tmp_path), str(tmp_path / "timelapse.gif"))  # reads every grid: none is truncated
    with Image.open(path) as grid:
        assert np.asarray(grid).max() == 0
