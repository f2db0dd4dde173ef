"""What a person looks at: progress bars only where someone watches (raygan.progress), and image grids
upscaled with nearest neighbour so that 8x8 images are visible (raygan.figures.save_image_grid)."""
import io
import logging
import re
import sys

import numpy as np
import torch
from PIL import Image

from raygan.figures import MIN_CELL_PX, save_image_grid, upscale_factor
from raygan.progress import ENV, enabled, polled, progress, track


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_nothing_is_written(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    stream = io.StringIO()
    with progress(total=5, desc="members", stream=stream) as bar:
        bar.update(3)
    assert list(track([1, 2, 3], "audit", stream=stream)) == [1, 2, 3]
    assert stream.getvalue() == "" and not enabled(stream)
    monkeypatch.setenv(ENV, "0")  # silenced on a terminal too
    terminal = _Terminal()
    with progress(total=5, desc="members", stream=terminal) as bar:
        bar.update(5)
    assert terminal.getvalue() == "" and enabled(_Terminal()) is False


def test_forced_on_the_bar_shows_counts_and_an_eta_and_log_lines_stay_whole(monkeypatch, capsys):
    monkeypatch.setenv(ENV, "1")
    stream = io.StringIO()
    raygan_logger = logging.getLogger("raygan")
    console = logging.StreamHandler(sys.stdout)  # as raygan.logs sets up, without touching its state
    raygan_logger.addHandler(console)
    try:
        with progress(total=5, desc="members", stream=stream) as bar:
            bar.update(3)
            assert console not in raygan_logger.handlers  # its lines now go through tqdm.write
            logging.getLogger("raygan.test_progress").warning("a line while the bar is shown")
            bar.refresh()
            assert "members" in stream.getvalue() and "3/5" in stream.getvalue()
            assert re.search(r"\d\d:\d\d<(\d\d:\d\d|\?)", stream.getvalue())  # elapsed<remaining: the ETA
        assert console in raygan_logger.handlers  # logging is as it was after the bar
    finally:
        raygan_logger.removeHandler(console)
    assert "a line while the bar is shown\n" in capsys.readouterr().out
    stream = io.StringIO()
    for _ in track(range(4), "classifiers", stream=stream):
        pass
    assert "4/4" in stream.getvalue() and "classifiers" in stream.getvalue()
    monkeypatch.delenv(ENV)
    assert enabled(_Terminal())


def test_a_polled_bar_follows_its_count_and_off_it_never_looks(monkeypatch):
    monkeypatch.setenv(ENV, "0")
    with polled(lambda: 1 / 0, total=3, desc="synthesis", stream=io.StringIO()):
        pass  # off: count is never called, so its error never shows
    monkeypatch.setenv(ENV, "1")
    stream, files = io.StringIO(), []
    with polled(lambda: len(files), total=3, desc="synthesis", unit="chunk", interval_s=0.01, stream=stream):
        files += ["a", "b", "c"]  # the blocking call writing its files
    assert "synthesis" in stream.getvalue() and "3/3" in stream.getvalue()


def test_grid_of_8x8_images_is_upscaled_by_nearest_neighbour(tmp_path):
    assert (upscale_factor(8, 8), upscale_factor(28, 28), upscale_factor(32, 32), upscale_factor(64, 64)) \
        == (6, 2, 2, 1)
    images = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    s, side = upscale_factor(8, 8), 4 * (8 + 1) + 1  # make_grid: 4 x 4 cells, 1 px padding
    assert 8 * s >= MIN_CELL_PX
    path = save_image_grid(images, tmp_path / "grid.png", nrow=4)
    pixels = np.asarray(Image.open(path).convert("L"))
    assert pixels.shape == (side * s, side * s)
    blocks = pixels.reshape(side, s, side, s)
    assert (blocks == blocks[:, :1, :, :1]).all()  # every s x s block is one pixel's value
    small = np.asarray(Image.open(save_image_grid(images, tmp_path / "small.png", nrow=4, min_cell_px=1))
                       .convert("L"))
    np.testing.assert_array_equal(blocks[:, 0, :, 0], small)  # the same pixels, not resampled
