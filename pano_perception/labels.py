"""ADE20K-150 label space (SceneParse150): 0-based class ids, names and the standard colour palette.

Semantic ids everywhere in pano_perception are these 0-based ids (0 wall, 1 building, 2 sky, 3 floor, ...), the
label space MTPano predicts; ``IGNORE_ID`` (255) marks unlabelled pixels in uint8 label images. Names and palette
follow the MIT SceneParse150 benchmark as distributed by MMSegmentation (``mmseg/datasets/ade.py``).
"""
from __future__ import annotations

import cv2
import numpy as np

IGNORE_ID = 255

ADE20K_CLASSES: tuple[str, ...] = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair",
    "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion",
    "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace",
    "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table", "pillow", "screen door",
    "stairway",
    "river", "bridge", "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine",
    "hovel",
    "bus", "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth",
    "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet",
    "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool",
    "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball",
    "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher",
    "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan",
    "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)

# RGB colour of each class id (the palette used by MMSegmentation and most ADE20K visualisations).
ADE20K_PALETTE = np.array([
    [120, 120, 120], [180, 120, 120], [6, 230, 230], [80, 50, 50], [4, 200, 3], [120, 120, 80],
    [140, 140, 140], [204, 5, 255], [230, 230, 230], [4, 250, 7], [224, 5, 255], [235, 255, 7],
    [150, 5, 61], [120, 120, 70], [8, 255, 51], [255, 6, 82], [143, 255, 140], [204, 255, 4],
    [255, 51, 7], [204, 70, 3], [0, 102, 200], [61, 230, 250], [255, 6, 51], [11, 102, 255],
    [255, 7, 71], [255, 9, 224], [9, 7, 230], [220, 220, 220], [255, 9, 92], [112, 9, 255],
    [8, 255, 214], [7, 255, 224], [255, 184, 6], [10, 255, 71], [255, 41, 10], [7, 255, 255],
    [224, 255, 8], [102, 8, 255], [255, 61, 6], [255, 194, 7], [255, 122, 8], [0, 255, 20],
    [255, 8, 41], [255, 5, 153], [6, 51, 255], [235, 12, 255], [160, 150, 20], [0, 163, 255],
    [140, 140, 140], [250, 10, 15], [20, 255, 0], [31, 255, 0], [255, 31, 0], [255, 224, 0],
    [153, 255, 0], [0, 0, 255], [255, 71, 0], [0, 235, 255], [0, 173, 255], [31, 0, 255],
    [11, 200, 200], [255, 82, 0], [0, 255, 245], [0, 61, 255], [0, 255, 112], [0, 255, 133],
    [255, 0, 0], [255, 163, 0], [255, 102, 0], [194, 255, 0], [0, 143, 255], [51, 255, 0],
    [0, 82, 255], [0, 255, 41], [0, 255, 173], [10, 0, 255], [173, 255, 0], [0, 255, 153],
    [255, 92, 0], [255, 0, 255], [255, 0, 245], [255, 0, 102], [255, 173, 0], [255, 0, 20],
    [255, 184, 184], [0, 31, 255], [0, 255, 61], [0, 71, 255], [255, 0, 204], [0, 255, 194],
    [0, 255, 82], [0, 10, 255], [0, 112, 255], [51, 0, 255], [0, 194, 255], [0, 122, 255],
    [0, 255, 163], [255, 153, 0], [0, 255, 10], [255, 112, 0], [143, 255, 0], [82, 0, 255],
    [163, 255, 0], [255, 235, 0], [8, 184, 170], [133, 0, 255], [0, 255, 92], [184, 0, 255],
    [255, 0, 31], [0, 184, 255], [0, 214, 255], [255, 0, 112], [92, 255, 0], [0, 224, 255],
    [112, 224, 255], [70, 184, 160], [163, 0, 255], [153, 0, 255], [71, 255, 0], [255, 0, 163],
    [255, 204, 0], [255, 0, 143], [0, 255, 235], [133, 255, 0], [255, 0, 235], [245, 0, 255],
    [255, 0, 122], [255, 245, 0], [10, 190, 212], [214, 255, 0], [0, 204, 255], [20, 0, 255],
    [255, 255, 0], [0, 153, 255], [0, 41, 255], [0, 255, 204], [41, 0, 255], [41, 255, 0],
    [173, 0, 255], [0, 245, 255], [71, 0, 255], [122, 0, 255], [0, 255, 184], [0, 92, 255],
    [184, 255, 0], [0, 133, 255], [255, 214, 0], [25, 194, 194], [102, 255, 0], [92, 0, 255],
], dtype=np.uint8)

NUM_CLASSES = len(ADE20K_CLASSES)
_IDS = {name: i for i, name in enumerate(ADE20K_CLASSES)}


def class_id(name: str) -> int:
    """0-based ADE20K-150 id of a class name (e.g. ``class_id("chair") == 19``)."""
    try:
        return _IDS[name]
    except KeyError:
        raise KeyError(f"{name!r} is not an ADE20K-150 class name") from None


def colorize_semantic(semantic: np.ndarray, ignore_color=(0, 0, 0), size: tuple[int, int] | None = None,
                      out: np.ndarray | None = None) -> np.ndarray:
    """uint8 RGB image (H, W, 3) of a semantic id image (ids >= 150, e.g. IGNORE_ID, get ``ignore_color``): a new
    array, or ``out``. ``size``: (H, W) to resize the colours to by nearest neighbour with half-pixel centres, the
    same bytes as colouring the ids resized so (``resize_labels``) but faster."""
    table = np.zeros((256, 4), dtype=np.uint8)  # RGBA rows: one 4-byte word per id
    table[:] = (*ignore_color, 0)
    table[:NUM_CLASSES, :3] = ADE20K_PALETTE
    ids = np.asarray(semantic, dtype=np.uint8)
    # A gather of 4-byte words, then RGBA -> RGB: 2x faster than cv2.LUT on three channels, 12x than table[ids].
    rgba = np.take(table.view(np.uint32).reshape(256), ids).view(np.uint8).reshape(*ids.shape, 4)
    if size is not None and tuple(size) != ids.shape:
        # resized as 4-byte pixels: OpenCV's nearest neighbour is 3x faster on them than on 3-byte ones
        rgba = cv2.resize(rgba, (size[1], size[0]), interpolation=cv2.INTER_NEAREST_EXACT)
    return cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB, dst=out)
