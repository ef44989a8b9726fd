from recipe_common.ros.object_status import STATUS_NAMES, USABLE_STATUSES, status_name
from recipe_interfaces.msg import ObjectState


def test_every_status_of_the_message_has_a_name_and_only_tracking_and_occluded_carry_a_position():
    codes = [getattr(ObjectState, n) for n in ("STATUS_LOST", "STATUS_TRACKING", "STATUS_INITIALIZING",
                                                  "STATUS_OCCLUDED")]
    assert sorted(STATUS_NAMES) == sorted(codes)
    assert set(USABLE_STATUSES) == {ObjectState.STATUS_TRACKING, ObjectState.STATUS_OCCLUDED}
    assert status_name(ObjectState.STATUS_LOST) == "LOST"
    assert status_name(9) == "9"  # a code this build does not know is reported by number
