"""The DiT360 prompt engine of appendix A.1: an attribute pool and a probabilistic template.

A scene is drawn from the *Indoor* pool (residential, commercial, public spaces, industrial) with probability 0.6,
else from the *Outdoor* pool (urban, nature, rural, historical); each of three modifiers (lighting, material and
texture details, quality) is added independently with probability 0.5; the prompt is
``"A [L] view of a [S] with [D], [Q], 360 panorama."`` with absent optional slots (and their connecting words)
left out. Prompt ``i`` of a run depends only on ``(seed, i)``, so sharded or resumed runs agree.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INDOOR_PROBABILITY = 0.6
MODIFIER_PROBABILITY = 0.5

SCENES: dict[str, dict[str, tuple[str, ...]]] = {
    "indoor": {
        "residential": ("modern kitchen", "cozy living room", "minimalist bedroom", "spacious loft apartment",
                        "rustic farmhouse dining room", "luxury bathroom", "children's playroom", "home office",
                        "attic bedroom", "walk-in closet", "basement game room", "sunroom"),
        "commercial": ("open-plan office", "coffee shop", "hotel lobby", "boutique clothing store", "restaurant",
                       "supermarket aisle", "bookstore", "hair salon", "bar with a long counter",
                       "conference room", "car showroom", "fitness gym"),
        "public spaces": ("museum gallery", "library reading room", "train station hall", "airport terminal",
                          "school classroom", "hospital corridor", "church interior", "concert hall",
                          "shopping mall atrium", "indoor swimming pool", "university lecture hall"),
        "industrial": ("warehouse", "factory floor", "workshop", "server room", "parking garage",
                       "greenhouse interior", "loading dock", "brewery cellar"),
    },
    "outdoor": {
        "urban": ("busy city street", "quiet residential street", "city square with a fountain", "rooftop terrace",
                  "downtown intersection", "harbor promenade", "pedestrian shopping street", "urban park",
                  "subway entrance plaza", "parking lot"),
        "nature": ("dense pine forest", "mountain lake", "sandy beach", "desert canyon", "snowy mountain peak",
                   "tropical jungle", "flower meadow", "waterfall in a gorge", "autumn birch forest", "savanna"),
        "rural": ("farmyard with a red barn", "vineyard", "country road between fields", "village square",
                  "orchard", "wheat field", "riverside cottage garden", "horse pasture"),
        "historical": ("ancient temple ruins", "medieval castle courtyard", "roman amphitheater",
                       "old town cobblestone street", "traditional japanese garden", "colonial plaza",
                       "stone bridge over a river", "cathedral square"),
    },
}
LIGHTING = ("golden hour sunset", "cinematic lighting", "blue hour twilight", "bright midday sun", "overcast",
            "soft morning light", "warm ambient lighting", "moonlit night", "foggy dawn", "neon-lit night")
DETAILS = {
    "indoor": ("wooden flooring", "exposed brick walls", "marble countertops", "large windows", "velvet furniture",
               "concrete walls", "potted plants", "patterned rugs", "glass partitions", "tiled floor"),
    "outdoor": ("lush vegetation", "wet asphalt", "cobblestones", "weathered stone", "autumn leaves",
                "reflections on water", "snow-covered ground", "wildflowers", "graffiti walls", "dry grass"),
}
QUALITY = ("8k", "photorealistic", "masterpiece", "highly detailed", "sharp focus", "ultra realistic")


@dataclass(frozen=True)
class Prompt:
    """One generated prompt with the attributes it was built from (``None``: slot not triggered)."""

    text: str
    domain: str
    category: str
    scene: str
    lighting: str | None
    details: str | None
    quality: str | None


def build_prompt(scene: str, lighting: str | None = None, details: str | None = None,
                 quality: str | None = None) -> str:
    """The template ``"A [L] view of a [S] with [D], [Q], 360 panorama."`` with absent slots left out."""
    text = f"A {lighting} view of a {scene}" if lighting else f"A view of a {scene}"
    if details:
        text += f" with {details}"
    if quality:
        text += f", {quality}"
    return text + ", 360 panorama."


def sample_prompt(seed: int, index: int) -> Prompt:
    """Prompt ``index`` of the run ``seed`` (deterministic)."""
    rng = np.random.default_rng([seed, index])
    domain = "indoor" if rng.random() < INDOOR_PROBABILITY else "outdoor"
    categories = sorted(SCENES[domain])
    category = categories[rng.integers(len(categories))]
    scene = SCENES[domain][category][rng.integers(len(SCENES[domain][category]))]
    triggered = rng.random(3) < MODIFIER_PROBABILITY
    lighting = LIGHTING[rng.integers(len(LIGHTING))] if triggered[0] else None
    details = DETAILS[domain][rng.integers(len(DETAILS[domain]))] if triggered[1] else None
    quality = QUALITY[rng.integers(len(QUALITY))] if triggered[2] else None
    return Prompt(build_prompt(scene, lighting, details, quality), domain, category, scene, lighting, details,
                  quality)
