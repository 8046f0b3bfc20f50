"""NodeHealth: what /diagnostics says after errors, and after a lasting fault."""
import logging

from diagnostic_msgs.msg import DiagnosticStatus

from pano_perception.ros.diagnostics import NodeHealth

LOGGER = logging.getLogger("test_diagnostics")


def status(health, state="active"):
    return health.status(state, {"model": "m"}).status[0]


def test_a_passing_error_is_held_then_the_state_returns():
    health = NodeHealth("dense perception", "camera", error_hold_s=0.0)
    health.error("input", "bad input frame: not 2:1", LOGGER)
    after = status(health)
    assert after.level == DiagnosticStatus.OK and after.message == "active"
    assert {kv.key: kv.value for kv in after.values}["last_error"] == "bad input frame: not 2:1"
    assert status(NodeHealth("x", "y", error_hold_s=60.0), "inactive").level == DiagnosticStatus.WARN


def test_a_lasting_fault_stays_error_until_recovered():
    health = NodeHealth("dense perception", "camera", error_hold_s=0.0)
    health.fail("model", "could not load the model: checkpoint file not found", LOGGER)
    for _ in range(3):  # however long the node waits, inactive
        inactive = status(health, "inactive")
        assert inactive.level == DiagnosticStatus.ERROR and "checkpoint file not found" in inactive.message
    health.recover()
    assert status(health).level == DiagnosticStatus.OK and health.errors == 1
