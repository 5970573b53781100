"""Image grids: what a person looks at to judge a generative model."""
import glob
import os

import numpy as np
from PIL import Image

from zoo.errors import UsageError
from zoo.files import written_aside


def to_uint8(images):
    """Images in [-1, 1] -> uint8 in [0, 255]."""
    return np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def tile(grid, padding=2):
    """[rows, cols, H, W, C] images in [-1, 1] -> one uint8 [rows*(H+p)+p, cols*(W+p)+p, C] image."""
    grid = to_uint8(grid)
    rows, cols, height, width, channels = grid.shape
    canvas = np.full((rows * (height + padding) + padding, cols * (width + padding) + padding, channels),
                     255, np.uint8)
    for r in range(rows):
        for c in range(cols):
            top, left = padding + r * (height + padding), padding + c * (width + padding)
            canvas[top:top + height, left:left + width] = grid[r, c]
    return canvas


def picture(image, scale=1):
    """A uint8 [H, W, C] image as a PIL image, enlarged `scale` times (nearest neighbour)."""
    result = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    return result.resize((result.width * scale, result.height * scale), Image.NEAREST) if scale > 1 else result


SAMPLE_SCALE = 2  # PNG grids are enlarged so 32x32 samples are visible


def save_png(image, path, scale=SAMPLE_SCALE):
    """Saves a uint8 [H, W, C] image, enlarged `scale` times so small samples are visible; written aside
    and renamed, so a kill leaves no truncated PNG (a later timelapse would fail on it)."""
    with written_aside(path) as partial:
        picture(image, scale).save(partial)


def save_gif(frames, path, scale=1, frame_ms=150, last_frame_ms=1500):
    """An animated GIF that loops over PIL images or uint8 [H, W, C] frames, holding the last a while.

    Written aside and renamed, as the run's other rewritten files.
    """
    pictures = [frame if isinstance(frame, Image.Image) else picture(frame, scale) for frame in frames]
    # Grey stays grey (GIF's palette holds 256 levels); colour gets a palette without dithering,
    # whose noise GIF's compression cannot squeeze.
    pictures = [frame if frame.mode == "L" else frame.convert("RGB").quantize(256, dither=Image.Dither.NONE)
                for frame in pictures]
    with written_aside(path) as partial:
        pictures[0].save(partial, format="GIF", save_all=True, append_images=pictures[1:], loop=0,
                         duration=[frame_ms] * (len(pictures) - 1) + [last_frame_ms])


def timelapse(samples_dir, path):
    """An animated GIF of a run's fixed sample grids (samples/epoch_*.png), epoch after epoch.

    Frames at the samples' own size (the PNGs' enlargement undone): a GIF of noisy early samples
    compresses poorly, and a viewer can enlarge it.
    """
    files = sorted(glob.glob(os.path.join(samples_dir, "epoch_*.png")))
    if not files:
        raise UsageError(f"{samples_dir} holds no epoch_*.png sample grids: train at least one epoch first")
    frames = []
    for file in files:
        with Image.open(file) as grid:
            frames.append(grid.resize((grid.width // SAMPLE_SCALE, grid.height // SAMPLE_SCALE), Image.NEAREST))
    save_gif(frames, path)
    return path
