"""Image grids: what a person looks at to judge a generative model."""
import numpy as np
from PIL import Image


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


def save_png(image, path, scale=2):
    """Saves a uint8 [H, W, C] image, enlarged `scale` times so small samples are visible."""
    picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST).save(path)
