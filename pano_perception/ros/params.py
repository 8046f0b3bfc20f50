"""Declaring and validating node parameters from one table, with descriptors (ranges, choices, read-only)."""
from __future__ import annotations

from dataclasses import dataclass

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy


@dataclass(frozen=True)
class Param:
    """One parameter: default value (its type is the parameter's type), description and constraints."""

    name: str
    default: object
    description: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = False


class ParameterError(ValueError):
    """A parameter value the node cannot run with; the message names the parameter and the allowed values."""


def declare(node, table: list[Param]) -> dict[str, object]:
    """Declare every parameter of ``table`` on ``node``, validate the values and return them by name."""
    for p in table:
        descriptor = ParameterDescriptor(description=p.description, read_only=p.read_only)
        if p.choices:
            descriptor.additional_constraints = "one of: " + ", ".join(p.choices)
        if p.min is not None and not isinstance(p.default, bool):
            if isinstance(p.default, int):
                descriptor.integer_range = [IntegerRange(from_value=int(p.min), to_value=int(p.max), step=0)]
            elif isinstance(p.default, float):
                descriptor.floating_point_range = [FloatingPointRange(from_value=float(p.min),
                                                                      to_value=float(p.max), step=0.0)]
        node.declare_parameter(p.name, p.default, descriptor)
    return {p.name: validate(p, node.get_parameter(p.name).value) for p in table}


def validate(p: Param, value):
    """Check one value against its ``Param``; raise ParameterError naming the parameter."""
    if p.choices is not None and value not in p.choices:
        raise ParameterError(f"parameter '{p.name}' = {value!r} is not one of {list(p.choices)}")
    if p.min is not None and not (p.min <= value <= p.max):
        raise ParameterError(f"parameter '{p.name}' = {value!r} is outside [{p.min}, {p.max}]")
    return value


RELIABILITY_CHOICES = ("auto", "reliable", "best_effort")
DURABILITY_CHOICES = ("volatile", "transient_local")


def qos_profile(reliability: str, depth: int, durability: str) -> QoSProfile:
    """A keep-last QoS profile from parameter strings (``auto`` is resolved by the caller first)."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT,
        durability=(DurabilityPolicy.TRANSIENT_LOCAL if durability == "transient_local"
                    else DurabilityPolicy.VOLATILE),
    )


def reliability_matching_publishers(node, topic: str) -> str | None:
    """``reliable`` if every publisher of ``topic`` is reliable, ``best_effort`` if any is not, None if none.

    A reliable subscription never connects to a best-effort publisher (the most common "no image" bug); a
    best-effort subscription connects to both but loses large frames, so reliable is chosen whenever possible.
    """
    infos = node.get_publishers_info_by_topic(topic)
    if not infos:
        return None
    if all(info.qos_profile.reliability == ReliabilityPolicy.RELIABLE for info in infos):
        return "reliable"
    return "best_effort"
