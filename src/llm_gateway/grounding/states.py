"""Resource states (running, stopped, healthy, paid, ...) reduced to a class each.

Tools and answers word the same state differently ("Succeeded", "completed",
"successful"); each word maps to one class, and two different classes said of
one thing contradict each other. The words an answer is checked for are a
narrower set than those recognised in tool output: "up", "down", "done" and
"error" are too common in prose to be read as claims.
"""

from __future__ import annotations

_CLASSES: dict[str, tuple[str, ...]] = {
    "running": ("running", "started", "up", "online", "inservice", "in-service"),
    "stopped": ("stopped", "down", "offline", "halted", "exited"),
    "stopping": ("stopping", "shutting-down", "terminating"),
    "starting": ("starting", "booting", "restarting"),
    "pending": ("pending", "provisioning", "queued", "waiting", "scheduled", "creating",
                "initializing"),
    "terminated": ("terminated", "deleted", "destroyed"),
    "failed": ("failed", "failing", "failure", "error", "errored", "crashed",
               "crashloopbackoff", "imagepullbackoff", "oomkilled"),
    "succeeded": ("succeeded", "successful", "success", "passed"),
    # Finished, with no word on how: a run "completed" may have failed (its conclusion says).
    "completed": ("completed", "complete", "done", "finished"),
    "skipped": ("skipped",),
    "ready": ("ready",),
    "not-ready": ("notready", "not-ready", "unready"),
    "active": ("active", "live"),
    "inactive": ("inactive",),
    "enabled": ("enabled",),
    "disabled": ("disabled",),
    "healthy": ("healthy", "ok", "green"),
    "unhealthy": ("unhealthy", "degraded", "impaired", "red"),
    "open": ("open", "opened", "reopened"),
    "closed": ("closed", "resolved"),
    "merged": ("merged",),
    "available": ("available",),
    "unavailable": ("unavailable",),
    "in-use": ("in-use", "attached"),
    "shipped": ("shipped", "dispatched", "in-transit"),
    "delivered": ("delivered",),
    "processing": ("processing", "in-progress"),
    "cancelled": ("cancelled", "canceled"),
    "refunded": ("refunded",),
    "paid": ("paid",),
    "unpaid": ("unpaid", "overdue", "past-due"),
    "expired": ("expired",),
    "suspended": ("suspended",),
    "confirmed": ("confirmed", "booked"),
    "alerting": ("alerting", "alert", "triggered", "firing", "alarm"),
}  # fmt: skip

_WORD_CLASS: dict[str, str] = {w: name for name, words in _CLASSES.items() for w in words}

# The words an answer's state claims are made of.
ANSWER_STATES: frozenset[str] = frozenset(_WORD_CLASS) - {
    "ready", "up", "down", "done", "error", "ok", "green", "red", "live", "success", "failure",
    "complete", "waiting", "scheduled", "creating", "attached", "resolved", "restarting",
    "started", "exited", "deleted", "failing", "opened", "alert", "alarm", "booked",
}  # fmt: skip


# States that exclude each other: two classes in one axis said of one thing contradict.
# Classes in no common axis ("open" and "processing") are different vocabularies, not
# a contradiction.
_AXES: tuple[frozenset[str], ...] = tuple(
    frozenset(axis.split())
    for axis in (
        "running stopped stopping starting pending terminated failed succeeded suspended",
        "healthy unhealthy alerting",
        "pending confirmed cancelled",
        "open pending closed merged",
        "active inactive suspended expired cancelled",
        "enabled disabled suspended",
        "available unavailable in-use pending",
        "pending processing shipped delivered cancelled refunded",
        "paid unpaid refunded",
        "pending processing running succeeded failed cancelled",
        "succeeded failed skipped cancelled",
        "ready not-ready",
        "pending processing running completed",
    )
)


# A claim of the first implies any of the rest: a run that succeeded or failed has completed.
_IMPLIED_BY: dict[str, frozenset[str]] = {
    "completed": frozenset({"succeeded", "failed", "skipped", "cancelled"}),
}


def holds(state: str, states: set[str] | frozenset[str]) -> bool:
    """Whether ``state`` is one of ``states`` or implied by one ("completed" by "succeeded")."""
    return state in states or bool(_IMPLIED_BY.get(state, frozenset()) & states)


def conflicts(state: str, other: str) -> bool:
    """Whether two state classes cannot both hold of one thing."""
    if other in _IMPLIED_BY.get(state, ()) or state in _IMPLIED_BY.get(other, ()):
        return False
    return state != other and any(state in axis and other in axis for axis in _AXES)


def state_class(word: str) -> str | None:
    """The state class of a word or a tool's state value ("Running", "in_progress"), or None."""
    low = word.strip().lower().replace("_", "-").replace(" ", "-")
    return _WORD_CLASS.get(low)
