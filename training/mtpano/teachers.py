"""Perspective teachers: dense labels for perspective crops of a panorama (Sec. 3.1, 4.1).

A teacher gets the crops (uint8 RGB ``[N, h, w, 3]``), their ``PerspectiveView``s and the panorama's context and
returns ``PerspectiveLabels`` in each view's optical frame (z forward, x right, y down): ADE20K-150 ids (255 =
unlabelled), z-depth in metres (NaN = invalid) and unit normals pointing towards the camera (NaN = invalid).

* ``OracleTeacher`` renders the crops' exact labels from the synthetic world (our CPU stand-in for the teachers).
* ``MoGe2Teacher`` (geometry), ``TransformersSegmenterTeacher`` (any ADE20K-150 segmenter on the transformers hub;
  the paper's InternImage-H is an mmsegmentation model) and ``DepthAnythingV2Teacher`` (metric depth through
  transformers) are the real adapters: their packages and weights are imported/loaded only when constructed, and
  they need a GPU to be practical. Weights come from the Hugging Face hub or a local folder of the user's choice.
* ``CompositeTeacher`` takes each task from the first teacher that provides it (the paper: semantics from the
  segmenter, depth and normals from MoGe-2).
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pano_perception.geometry import PerspectiveView
from pano_perception.labels import IGNORE_ID, NUM_CLASSES

TASKS = ("semantic", "depth", "normals")


class TeacherUnavailableError(RuntimeError):
    """A teacher's package or weights are not available on this machine."""


@dataclass
class PerspectiveLabels:
    """Labels of N crops of size h x w, each array optional (None: the teacher does not provide the task).

    ``semantic`` uint8 [N, h, w] ADE20K-150 ids, 255 unlabelled; ``z_depth`` float32 [N, h, w] metres along the
    optical axis, NaN invalid; ``normals`` float32 [N, h, w, 3] unit, optical frame, towards the camera, NaN invalid.
    """

    semantic: np.ndarray | None = None
    z_depth: np.ndarray | None = None
    normals: np.ndarray | None = None


@dataclass
class SceneContext:
    """What the oracle needs to render a panorama's crops: a synthetic ``Scene`` and the panorama's ``CameraPose``."""

    scene: object
    pose: object


class Teacher(ABC):
    """Dense perspective predictions for crops of one panorama."""

    name: str = "teacher"
    tasks: tuple[str, ...] = ()

    @abstractmethod
    def predict(self, crops: np.ndarray, views: Sequence[PerspectiveView], context=None) -> PerspectiveLabels:
        """Labels for ``crops`` (uint8 [N, h, w, 3]) seen through ``views``; ``context`` as the source provides it."""


class OracleTeacher(Teacher):
    """Exact labels rendered from the synthetic world (needs a ``SceneContext``); the crops' pixels are unused."""

    name = "oracle"
    tasks = TASKS

    def predict(self, crops, views, context=None) -> PerspectiveLabels:
        from pano_perception.synthetic import RenderOptions, render_view

        if not isinstance(context, SceneContext):
            raise TypeError("the oracle teacher needs a SceneContext (a synthetic scene and camera pose)")
        options = RenderOptions(shadows=False)
        frames = [render_view(context.scene, context.pose, view, options) for view in views]
        return PerspectiveLabels(
            semantic=np.stack([f.semantic for f in frames]),
            z_depth=np.stack([f.z_depth for f in frames]).astype(np.float32),
            normals=np.stack([f.normals for f in frames]).astype(np.float32),
        )


def _import(module: str, hint: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as error:
        raise TeacherUnavailableError(f"{hint} (import of {module!r} failed: {error})") from error


def _facing_camera(normals: np.ndarray, views: Sequence[PerspectiveView]) -> np.ndarray:
    """Flip optical-frame normals [N, h, w, 3] that point away from the camera (n . ray > 0)."""
    rays = np.stack([v.pixel_rays() for v in views]).astype(np.float32)
    facing = np.sum(normals * rays, axis=-1, keepdims=True)
    return np.where(facing > 0, -normals, normals)


class MoGe2Teacher(Teacher):
    """MoGe-2 (Wang et al. 2025): metric z-depth and normals in the OpenCV camera frame (= our optical frame).

    ``pretrained``: hub id or local checkpoint of a ``-normal`` MoGe-2 model. The crop's known FoV is passed as
    ``fov_x`` (degrees); pixels outside MoGe's mask (sky, undefined geometry) are invalid.
    """

    name = "moge2"
    tasks = ("depth", "normals")

    def __init__(self, pretrained: str = "Ruicheng/moge-2-vitl-normal", device: str = "cuda", fp16: bool = True,
                 resolution_level: int = 9):
        import torch

        moge = _import("moge.model.v2", "MoGe-2 needs `pip install git+https://github.com/microsoft/MoGe.git`")
        self.torch, self.device, self.fp16, self.resolution_level = torch, torch.device(device), fp16, resolution_level
        self.model = moge.MoGeModel.from_pretrained(pretrained).to(self.device).eval()

    def predict(self, crops, views, context=None) -> PerspectiveLabels:
        torch = self.torch
        depth, normals = [], []
        with torch.inference_mode():
            for crop, view in zip(crops, views):
                image = torch.from_numpy(crop).to(self.device).permute(2, 0, 1).float() / 255.0
                out = self.model.infer(image, fov_x=math.degrees(view.hfov), resolution_level=self.resolution_level,
                                       use_fp16=self.fp16)
                mask = out["mask"].bool() & torch.isfinite(out["depth"])
                depth.append(torch.where(mask, out["depth"], torch.nan).float().cpu().numpy())
                if "normal" not in out:
                    raise TeacherUnavailableError(f"{self.name}: the model gives no normals; use a '-normal' model")
                normals.append(torch.where(mask[..., None], out["normal"], torch.nan).float().cpu().numpy())
        return PerspectiveLabels(z_depth=np.stack(depth), normals=_facing_camera(np.stack(normals), views))


class TransformersSegmenterTeacher(Teacher):
    """Any transformers ADE20K-150 segmenter (Mask2Former, OneFormer, UperNet, SegFormer, BEiT, DPT ...).

    The model's ``id2label`` must be the 150 SceneParse classes in their 0-based order (checked by count).
    """

    name = "segmenter"
    tasks = ("semantic",)

    def __init__(self, model_id: str = "facebook/mask2former-swin-large-ade-semantic", device: str = "cuda",
                 batch_size: int = 8):
        import torch

        transformers = _import("transformers", "the segmenter teacher needs transformers")
        self.torch, self.device, self.batch_size = torch, torch.device(device), batch_size
        self.processor = transformers.AutoImageProcessor.from_pretrained(model_id)
        try:
            model = transformers.AutoModelForSemanticSegmentation.from_pretrained(model_id)
        except ValueError:  # universal segmenters (Mask2Former, OneFormer) have their own auto class
            model = transformers.AutoModelForUniversalSegmentation.from_pretrained(model_id)
        if len(model.config.id2label) != NUM_CLASSES:
            raise TeacherUnavailableError(f"{model_id} has {len(model.config.id2label)} labels, not ADE20K-150")
        self.model = model.to(self.device).eval()

    def predict(self, crops, views, context=None) -> PerspectiveLabels:
        torch = self.torch
        labels = []
        with torch.inference_mode():
            for start in range(0, len(crops), self.batch_size):
                batch = list(crops[start:start + self.batch_size])
                inputs = self.processor(images=batch, return_tensors="pt").to(self.device)
                outputs = self.model(**inputs)
                maps = self.processor.post_process_semantic_segmentation(
                    outputs, target_sizes=[crop.shape[:2] for crop in batch])
                labels += [m.to(torch.uint8).cpu().numpy() for m in maps]
        return PerspectiveLabels(semantic=np.stack(labels))


class DepthAnythingV2Teacher(Teacher):
    """Depth Anything V2 through transformers; use a *metric* checkpoint (z-depth in metres), e.g. the default
    indoor model or ``depth-anything/Depth-Anything-V2-Metric-Outdoor-Large-hf``."""

    name = "dav2"
    tasks = ("depth",)

    def __init__(self, model_id: str = "depth-anything/Depth-Anything-V2-Metric-Indoor-Large-hf",
                 device: str = "cuda", batch_size: int = 8):
        import torch

        transformers = _import("transformers", "the Depth Anything V2 teacher needs transformers")
        self.torch, self.device, self.batch_size = torch, torch.device(device), batch_size
        self.processor = transformers.AutoImageProcessor.from_pretrained(model_id)
        self.model = transformers.AutoModelForDepthEstimation.from_pretrained(model_id).to(self.device).eval()
        if getattr(self.model.config, "depth_estimation_type", "metric") != "metric":
            raise TeacherUnavailableError(f"{model_id} predicts relative depth; a metric checkpoint is needed")

    def predict(self, crops, views, context=None) -> PerspectiveLabels:
        torch = self.torch
        depth = []
        with torch.inference_mode():
            for start in range(0, len(crops), self.batch_size):
                batch = list(crops[start:start + self.batch_size])
                inputs = self.processor(images=batch, return_tensors="pt").to(self.device)
                outputs = self.model(**inputs)
                maps = self.processor.post_process_depth_estimation(
                    outputs, target_sizes=[crop.shape[:2] for crop in batch])
                depth += [m["predicted_depth"].float().cpu().numpy() for m in maps]
        z = np.stack(depth).astype(np.float32)
        return PerspectiveLabels(z_depth=np.where(z > 0, z, np.nan).astype(np.float32))


class CompositeTeacher(Teacher):
    """Each task from the first of ``teachers`` that provides it."""

    def __init__(self, teachers: Sequence[Teacher]):
        self.teachers = list(teachers)
        self.name = "+".join(t.name for t in self.teachers)
        self.tasks = tuple(t for t in TASKS if any(t in teacher.tasks for teacher in self.teachers))

    def predict(self, crops, views, context=None) -> PerspectiveLabels:
        merged = PerspectiveLabels()
        for teacher in self.teachers:
            wanted = [t for t in teacher.tasks if getattr(merged, _FIELD[t]) is None]
            if not wanted:
                continue
            labels = teacher.predict(crops, views, context)
            for task in wanted:
                setattr(merged, _FIELD[task], getattr(labels, _FIELD[task]))
        return merged


_FIELD = {"semantic": "semantic", "depth": "z_depth", "normals": "normals"}
_ADAPTERS = {"oracle": OracleTeacher, "moge2": MoGe2Teacher, "segmenter": TransformersSegmenterTeacher,
             "dav2": DepthAnythingV2Teacher}


def build_teacher(spec: str, device: str = "cuda") -> Teacher:
    """A teacher from a spec: ``oracle``, or comma-separated ``adapter[=model]`` entries in priority order, e.g.
    ``segmenter=facebook/mask2former-swin-large-ade-semantic,moge2=Ruicheng/moge-2-vitl-normal`` (the paper's
    setup with an ADE20K Mask2Former in place of InternImage-H). Adapters: oracle, moge2, segmenter, dav2."""
    teachers = []
    for entry in filter(None, (e.strip() for e in spec.split(","))):
        name, _, model = entry.partition("=")
        if name not in _ADAPTERS:
            raise ValueError(f"unknown teacher {name!r}; known: {sorted(_ADAPTERS)}")
        if name == "oracle":
            teachers.append(OracleTeacher())
            continue
        kwargs = {"device": device}
        if model:
            kwargs["pretrained" if name == "moge2" else "model_id"] = model
        teachers.append(_ADAPTERS[name](**kwargs))
    if not teachers:
        raise ValueError("empty teacher spec")
    return teachers[0] if len(teachers) == 1 else CompositeTeacher(teachers)


def ignore_invalid_semantics(semantic: np.ndarray) -> np.ndarray:
    """Ids outside ADE20K-150 -> 255 (unlabelled)."""
    return np.where(semantic < NUM_CLASSES, semantic, IGNORE_ID).astype(np.uint8)
