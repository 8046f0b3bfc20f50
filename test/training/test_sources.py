"""Panorama sources: Structured3D and Stanford2D3D readers on tiny stand-ins written in their published formats, the
ERP folder, the DiT360 prompt engine and generation bookkeeping, the teacher interface."""
import json

import cv2
import numpy as np
import pytest

from pano_perception.labels import IGNORE_ID, class_id
from training.mtpano import generate_dit360 as dit360
from training.mtpano.datasets import (
    NYU40_TO_ADE,
    ErpFolder,
    Stanford2D3D,
    Structured3D,
    SyntheticPanoramas,
    open_source,
)
from training.mtpano.prompts import build_prompt, sample_prompt
from training.mtpano.teachers import (
    CompositeTeacher,
    OracleTeacher,
    PerspectiveLabels,
    Teacher,
    TeacherUnavailableError,
    build_teacher,
)

ADE_TO_NYU40 = {class_id(name): nyu for nyu, name in NYU40_TO_ADE.items()}
ADE_TO_S2D3D = {class_id("wall"): "wall", class_id("floor"): "floor", class_id("ceiling"): "ceiling",
                class_id("door"): "door", class_id("windowpane"): "window", class_id("table"): "table",
                class_id("chair"): "chair", class_id("sofa"): "sofa", class_id("bookcase"): "bookcase"}


@pytest.fixture(scope="module")
def panorama():
    return SyntheticPanoramas([3], 32)[0]


def _png(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image[..., ::-1] if image.ndim == 3 else image)


def test_structured3d_reader(panorama, tmp_path):
    folder = tmp_path / "scene_00007" / "2D_rendering" / "485142" / "panorama" / "full"
    _png(folder / "rgb_rawlight.png", panorama.rgb)
    depth_mm = np.round(np.nan_to_num(panorama.depth) * 1000).astype(np.uint16)
    _png(folder / "depth.png", depth_mm)
    nyu = np.vectorize(lambda a: ADE_TO_NYU40.get(int(a), 40))(panorama.semantic).astype(np.uint8)
    _png(folder / "semantic.png", nyu)
    _png(folder / "normal.png", np.full_like(panorama.rgb, 128))
    (folder.parent / "camera_xyz.txt").write_text("0 0 1500\n")
    source = Structured3D(tmp_path)
    assert len(source) == 1 and len(Structured3D(tmp_path, scenes=[7])) == 1
    sample = source[0]
    assert sample.key == "scene_00007/485142/full"
    np.testing.assert_array_equal(sample.rgb, panorama.rgb)
    np.testing.assert_allclose(sample.depth, panorama.depth, atol=6e-4)
    mappable = np.isin(panorama.semantic, list(ADE_TO_NYU40))
    np.testing.assert_array_equal(sample.semantic[mappable], panorama.semantic[mappable])
    assert (sample.semantic[~mappable] == IGNORE_ID).all()  # otherprop (40) has no ADE counterpart
    walls = (panorama.semantic == class_id("wall")) & np.isfinite(sample.normals).all(-1)
    cos = np.sum(sample.normals[walls] * panorama.normals[walls], -1)
    assert np.median(cos) > 0.99  # normals from (millimetre) depth agree on the planar walls


def test_stanford2d3d_reader(panorama, tmp_path):
    names = ["<UNK>_0_<UNK>_0"] + [f"{name}_1_office_1" for name in sorted(set(ADE_TO_S2D3D.values()))] + [
        "clutter_3_office_1"]
    index_of = {n.split("_")[0]: i for i, n in enumerate(names)}
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "semantic_labels.json").write_text(json.dumps(names))
    stem = "camera_0d600f92f8d14e288ddc590c32584a5a_office_1_frame_equirectangular"
    pano = tmp_path / "area_5a" / "pano"
    _png(pano / "rgb" / f"{stem}_domain_rgb.png", panorama.rgb)
    depth = np.where(np.isfinite(panorama.depth), np.round(np.nan_to_num(panorama.depth) * 512), 65535)
    _png(pano / "depth" / f"{stem}_domain_depth.png", depth.astype(np.uint16))
    labels = np.vectorize(lambda a: index_of.get(ADE_TO_S2D3D.get(int(a), "clutter")))(panorama.semantic)
    coded = np.stack([labels // 65536, labels // 256 % 256, labels % 256], -1).astype(np.uint8)
    _png(pano / "semantic" / f"{stem}_domain_semantic.png", coded)
    source = Stanford2D3D(tmp_path, areas=["area_5a"])
    assert len(source) == 1
    sample = source[0]
    assert sample.key == f"area_5a/{stem}"
    np.testing.assert_allclose(sample.depth, panorama.depth, atol=1.1e-3)
    mappable = np.isin(panorama.semantic, list(ADE_TO_S2D3D))
    np.testing.assert_array_equal(sample.semantic[mappable], panorama.semantic[mappable])
    assert (sample.semantic[~mappable] == IGNORE_ID).all()
    assert len(open_source(f"stanford2d3d:{tmp_path}:area_5a")) == 1


def test_erp_folder_and_source_specs(panorama, tmp_path):
    _png(tmp_path / "b" / "two.jpg", panorama.rgb)
    _png(tmp_path / "a.png", panorama.rgb)
    (tmp_path / "notes.txt").write_text("not an image")
    folder = ErpFolder(tmp_path)
    assert [folder[i].key for i in range(len(folder))] == ["a.png", "b/two.jpg"]
    assert folder[0].semantic is None and folder[0].rgb.shape == (32, 64, 3)
    synthetic = open_source("synthetic:3-4@16")
    assert len(synthetic) == 2 and synthetic[1].rgb.shape == (16, 32, 3)
    with pytest.raises(ValueError, match="unknown source"):
        open_source("imagenet:/data")


def test_prompt_engine_distribution_and_template():
    prompts = [sample_prompt(0, i) for i in range(4000)]
    indoor = np.mean([p.domain == "indoor" for p in prompts])
    assert abs(indoor - 0.6) < 0.03
    for slot in ("lighting", "details", "quality"):
        assert abs(np.mean([getattr(p, slot) is not None for p in prompts]) - 0.5) < 0.03
    assert sample_prompt(0, 17) == sample_prompt(0, 17) and sample_prompt(1, 17) != sample_prompt(0, 17)
    assert build_prompt("modern kitchen", "golden hour sunset", "wooden flooring", "8k") == (
        "A golden hour sunset view of a modern kitchen with wooden flooring, 8k, 360 panorama.")
    assert build_prompt("dense pine forest") == "A view of a dense pine forest, 360 panorama."
    assert {p.category for p in prompts if p.domain == "outdoor"} == {"urban", "nature", "rural", "historical"}


def test_generation_sharding_and_resume(tmp_path):
    shards = [dit360.assigned_indices(10, r, 3) for r in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(10)) and shards[1] == [1, 4, 7]
    done = dit360.image_path(tmp_path, 4)
    done.parent.mkdir(parents=True)
    done.write_bytes(b"png")
    assert dit360.pending_indices(tmp_path, shards[1]) == [1, 7]
    assert dit360.generate(tmp_path, 5, seed=0, rank=4, world_size=5) == 0  # its only image (4) is done
    with pytest.raises(SystemExit, match="diffusers"):
        dit360.generate(tmp_path, 10, seed=0, rank=1, world_size=3, device="cpu")


class _Fake(Teacher):
    def __init__(self, name, tasks, value):
        self.name, self.tasks, self.value = name, tasks, value

    def predict(self, crops, views, context=None):
        shape = (len(views), 2, 2)
        return PerspectiveLabels(semantic=np.full(shape, self.value, np.uint8),
                                 z_depth=np.full(shape, float(self.value), np.float32))


def test_teachers():
    composite = CompositeTeacher([_Fake("seg", ("semantic",), 7), _Fake("geo", ("semantic", "depth"), 3)])
    labels = composite.predict(np.zeros((2, 2, 2, 3), np.uint8), [None, None])
    assert composite.name == "seg+geo" and composite.tasks == ("semantic", "depth")
    assert (labels.semantic == 7).all() and (labels.z_depth == 3).all() and labels.normals is None
    assert isinstance(build_teacher("oracle"), OracleTeacher)
    with pytest.raises(ValueError, match="unknown teacher"):
        build_teacher("internimage")
    with pytest.raises(TeacherUnavailableError, match="MoGe"):
        build_teacher("moge2", device="cpu")  # the moge package is not installed here
    with pytest.raises(TypeError, match="SceneContext"):
        OracleTeacher().predict(None, [], context=None)


def test_real_adapters_post_processing_with_stand_in_models():
    """The adapters' conversion code, with stand-ins for the hub models (their weights are not available here)."""
    import torch

    from pano_perception.geometry import PerspectiveView
    from training.mtpano.teachers import DepthAnythingV2Teacher, MoGe2Teacher, TransformersSegmenterTeacher

    views = [PerspectiveView.from_degrees(4, 2, 90.0)]
    crops = np.zeros((1, 2, 4, 3), np.uint8)

    class MoGe:
        def infer(self, image, fov_x, resolution_level, use_fp16):
            assert image.shape == (3, 2, 4) and fov_x == pytest.approx(90.0)
            normal = torch.zeros(2, 4, 3)
            normal[..., 2] = 1.0  # pointing away from the camera: must be flipped
            mask = torch.ones(2, 4, dtype=torch.bool)
            mask[0, 0] = False
            return {"depth": torch.full((2, 4), 3.0), "mask": mask, "normal": normal}

    moge = object.__new__(MoGe2Teacher)
    moge.torch, moge.device, moge.fp16, moge.resolution_level, moge.model = torch, torch.device("cpu"), False, 9, MoGe()
    labels = moge.predict(crops, views)
    assert np.isnan(labels.z_depth[0, 0, 0]) and labels.z_depth[0, 1, 1] == 3.0
    assert np.isnan(labels.normals[0, 0, 0]).all() and (labels.normals[0, 1, 1] == (0, 0, -1)).all()

    class Inputs(dict):
        def to(self, device):
            return self

    class Processor:
        def __call__(self, images, return_tensors):
            return Inputs(pixel_values=torch.zeros(len(images), 3, 2, 4))

        def post_process_semantic_segmentation(self, outputs, target_sizes):
            return [torch.full(size, 7) for size in target_sizes]

        def post_process_depth_estimation(self, outputs, target_sizes):
            return [{"predicted_depth": torch.tensor([[0.0, 1.0, 2.0, 3.0]] * 2)} for _ in target_sizes]

    segmenter = object.__new__(TransformersSegmenterTeacher)
    segmenter.torch, segmenter.device, segmenter.batch_size = torch, torch.device("cpu"), 8
    segmenter.processor, segmenter.model = Processor(), lambda **inputs: None
    assert (segmenter.predict(crops, views).semantic == 7).all()
    depth = object.__new__(DepthAnythingV2Teacher)
    depth.torch, depth.device, depth.batch_size = torch, torch.device("cpu"), 8
    depth.processor, depth.model = Processor(), lambda **inputs: None
    z = depth.predict(crops, views).z_depth
    assert np.isnan(z[0, :, 0]).all() and (z[0, :, 3] == 3.0).all()  # no depth (0) is invalid
