"""/diagnostics status for a perception node: rates, drops, latency percentiles, model and last error."""
from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from ..runtime import LatencyStats, RateMeter


class NodeHealth:
    """Counters a node updates per frame and turns into a DiagnosticStatus once a period."""

    def __init__(self, name: str, hardware_id: str, error_hold_s: float = 2.0):
        self.name = name
        self.hardware_id = hardware_id
        self.error_hold_s = error_hold_s
        self.input_rate = RateMeter()
        self.processed_rate = RateMeter()
        self.latency = LatencyStats()
        self.errors = 0
        self.last_error = ""
        self.fault = ""  # a lasting error (the model could not load): ERROR until ``recover``
        self._last_error_time = -1e9
        self._last_logged: dict[str, float] = {}

    def error(self, cause: str, message: str, logger, throttle_s: float = 5.0) -> None:
        """Record an error; log it at most once per ``throttle_s`` for each ``cause``."""
        now = time.monotonic()
        self.errors += 1
        self.last_error = message
        self._last_error_time = now
        if now - self._last_logged.get(cause, -1e9) >= throttle_s:
            self._last_logged[cause] = now
            logger.error(message)

    def fail(self, cause: str, message: str, logger) -> None:
        """Record an error that lasts (e.g. activation failed): the status stays ERROR with ``message`` until
        ``recover``, however long the node then waits, inactive."""
        self.error(cause, message, logger)
        self.fault = message

    def recover(self) -> None:
        """The lasting error is gone (e.g. a later activation succeeded)."""
        self.fault = ""

    def status(self, state: str, values: dict[str, object]) -> DiagnosticArray:
        now = time.monotonic()
        recent_error = now - self._last_error_time < self.error_hold_s
        level, message = DiagnosticStatus.OK, state
        if self.fault:
            level, message = DiagnosticStatus.ERROR, self.fault
        elif recent_error:
            level, message = DiagnosticStatus.ERROR, self.last_error
        elif state != "active":
            level = DiagnosticStatus.WARN
        fields = {
            "state": state,
            "input_rate_hz": f"{self.input_rate.rate():.2f}",
            "processed_rate_hz": f"{self.processed_rate.rate():.2f}",
            "latency_p50_ms": f"{self.latency.percentile_ms(50):.1f}",
            "latency_p95_ms": f"{self.latency.percentile_ms(95):.1f}",
            "errors": str(self.errors),
            "last_error": self.last_error,
        }
        fields.update({k: str(v) for k, v in values.items()})
        status = DiagnosticStatus(level=level, name=self.name, message=message, hardware_id=self.hardware_id,
                                  values=[KeyValue(key=k, value=v) for k, v in fields.items()])
        array = DiagnosticArray(status=[status])
        return array
