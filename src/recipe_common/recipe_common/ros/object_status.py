"""What the status of a ``recipe_interfaces/ObjectState`` means to its readers.

The message defines the codes; which of them carry a position the policy may act on, and how they are
named in logs and reports, is read in several places (the policy node, the deploy's perception-vs-truth
report). One definition here keeps them agreeing.
"""

from __future__ import annotations

from recipe_interfaces.msg import ObjectState

# OCCLUDED carries perception's best estimate (the hand that holds the object hides it, which is exactly
# when the policy needs it); LOST and INITIALIZING carry none.
USABLE_STATUSES = (ObjectState.STATUS_TRACKING, ObjectState.STATUS_OCCLUDED)
STATUS_NAMES = {ObjectState.STATUS_LOST: "LOST", ObjectState.STATUS_TRACKING: "TRACKING",
                ObjectState.STATUS_INITIALIZING: "INITIALIZING", ObjectState.STATUS_OCCLUDED: "OCCLUDED"}


def status_name(status: int) -> str:
    """The status's name, or its number when the message carries a code this build does not know."""
    return STATUS_NAMES.get(int(status), str(status))
