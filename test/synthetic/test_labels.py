"""The ADE20K-150 label space (SceneParse150, 0-based) and its palette."""
import numpy as np
import pytest

from pano_perception.labels import ADE20K_CLASSES, ADE20K_PALETTE, IGNORE_ID, NUM_CLASSES, class_id, colorize_semantic


def test_label_space():
    assert NUM_CLASSES == len(ADE20K_CLASSES) == 150 and len(set(ADE20K_CLASSES)) == 150
    expected = {"wall": 0, "building": 1, "sky": 2, "floor": 3, "tree": 4, "ceiling": 5, "road": 6, "bed": 7,
                "windowpane": 8, "grass": 9, "cabinet": 10, "sidewalk": 11, "person": 12, "door": 14, "table": 15,
                "plant": 17, "chair": 19, "car": 20, "painting": 22, "sofa": 23, "shelf": 24, "rug": 28,
                "desk": 33, "lamp": 36, "pillow": 57, "coffee table": 64, "book": 67, "light": 82,
                "streetlight": 87, "flag": 149}
    assert {name: class_id(name) for name in expected} == expected
    with pytest.raises(KeyError):
        class_id("spaceship")


def test_palette():
    assert ADE20K_PALETTE.shape == (150, 3) and ADE20K_PALETTE.dtype == np.uint8
    assert ADE20K_PALETTE[0].tolist() == [120, 120, 120] and ADE20K_PALETTE[2].tolist() == [6, 230, 230]
    assert ADE20K_PALETTE[149].tolist() == [92, 0, 255]
    image = colorize_semantic(np.array([[0, 2], [IGNORE_ID, 149]], dtype=np.uint8))
    assert image[0, 1].tolist() == [6, 230, 230] and image[1, 0].tolist() == [0, 0, 0]


@pytest.mark.parametrize("size", [(24, 48), (20, 40), (3, 5), (8, 16)])
def test_colorize_semantic_at_another_size_equals_colouring_the_resized_ids(size):
    import cv2

    ids = np.random.default_rng(4).integers(0, 256, (8, 16)).astype(np.uint8)  # ignore ids (>= 150) too
    out = np.empty(size + (3,), np.uint8)
    image = colorize_semantic(ids, ignore_color=(1, 2, 3), size=size, out=out)
    assert image is out
    resized = cv2.resize(ids, (size[1], size[0]), interpolation=cv2.INTER_NEAREST_EXACT)
    np.testing.assert_array_equal(image, colorize_semantic(resized, ignore_color=(1, 2, 3)))
