"""Limit arithmetic: each limit alone, their combination, and the admin-facing examples."""

from datetime import datetime, timedelta

import pytest

from smtp_routing.tools.limits import (
    Item,
    Limits,
    State,
    eta,
    finish_batch,
    next_retry,
    refresh,
    release,
    remaining,
    reserve,
    retry_delay,
    too_big,
)

T0 = datetime(2026, 3, 2, 9, 30, 0)
ONE = [Item()]


def _send_at(limits, state, at, count=1):
    reservation = reserve(limits, state, at, [Item()] * count)
    return reservation.allowed, reservation.state, reservation


def test_no_limits_lets_everything_through():
    reservation = reserve(Limits(), State(), T0, [Item()] * 10000)
    assert reservation.allowed == 10000 and reservation.next_slot is None
    assert not Limits().any


def test_throttle_window_starts_with_first_message_and_resets_after_duration():
    limits = Limits(throttle_max=500, throttle_seconds=24 * 3600)
    first = T0 + timedelta(hours=3)
    allowed, state, reservation = _send_at(limits, State(), first, 600)
    assert allowed == 500
    assert reservation.blocked_by == "throttle"
    assert reservation.next_slot == first + timedelta(hours=24)
    # still inside the window, one second before it ends: nothing
    assert _send_at(limits, state, first + timedelta(hours=24, seconds=-1))[0] == 0
    # the window ends 24 hours after the first message, not at midnight
    allowed, state, _ = _send_at(limits, state, first + timedelta(hours=24), 600)
    assert allowed == 500
    assert state.throttle_start == first + timedelta(hours=24)


def test_anti_flood_pauses_after_n_and_resets_when_idle():
    limits = Limits(flood_max=20, flood_pause=60)
    allowed, state, reservation = _send_at(limits, State(), T0, 50)
    assert (allowed, reservation.blocked_by, reservation.next_slot) == (20, "flood", T0 + timedelta(seconds=60))
    assert _send_at(limits, state, T0 + timedelta(seconds=59))[0] == 0
    assert _send_at(limits, state, T0 + timedelta(seconds=60), 50)[0] == 20


def test_anti_flood_counter_resets_only_after_idle_time():
    limits = Limits(flood_max=3, flood_pause=60)
    state = State()
    # one message every 30 s: never idle for 60 s, so the counter keeps growing
    at = T0
    for _ in range(3):
        allowed, state, _ = _send_at(limits, state, at)
        assert allowed == 1
        at += timedelta(seconds=30)
    allowed, state, reservation = _send_at(limits, state, at)
    assert allowed == 0 and reservation.blocked_by == "flood"
    # idle longer than the pause: counter resets
    assert _send_at(limits, state, at + timedelta(seconds=61), 3)[0] == 3


def test_pause_counts_from_the_last_real_send():
    limits = Limits(flood_max=2, flood_pause=60)
    _, state, _ = _send_at(limits, State(), T0, 2)
    done = T0 + timedelta(seconds=10)  # the two mails took 10 s to go out
    state = finish_batch(limits, state, done)
    assert _send_at(limits, state, T0 + timedelta(seconds=60))[0] == 0
    assert _send_at(limits, state, done + timedelta(seconds=60))[0] == 1


def test_hourly_cap_per_clock_hour():
    limits = Limits(hourly_max=1200)
    allowed, state, reservation = _send_at(limits, State(), T0, 2000)
    assert allowed == 1200
    assert reservation.next_slot == datetime(2026, 3, 2, 10, 0, 0)
    assert _send_at(limits, state, datetime(2026, 3, 2, 10, 0, 0), 2000)[0] == 1200


def test_daily_cap_per_calendar_day():
    limits = Limits(daily_max=100)
    allowed, state, reservation = _send_at(limits, State(), T0, 150)
    assert (allowed, reservation.blocked_by, reservation.next_slot) == (100, "daily", datetime(2026, 3, 3))
    assert _send_at(limits, state, datetime(2026, 3, 2, 23, 59), 1)[0] == 0
    assert _send_at(limits, state, datetime(2026, 3, 3, 0, 0), 1)[0] == 1


def test_batch_count_and_size():
    limits = Limits(batch_max_count=500, batch_max_bytes=80 * 1024 * 1024, batch_interval=300)
    allowed, state, reservation = _send_at(limits, State(), T0, 700)
    assert (allowed, reservation.blocked_by, reservation.next_slot) == (500, "batch", T0 + timedelta(minutes=5))
    big = [Item(size=30 * 1024 * 1024)] * 5
    reservation = reserve(limits, State(), T0, big)
    assert reservation.allowed == 2  # 60 MB fit in 80 MB, the third would make 90
    # one mail larger than a whole batch still goes, alone
    assert reserve(limits, State(), T0, [Item(size=100 * 1024 * 1024)] * 2).allowed == 1


def test_counting_recipients():
    limits = Limits(daily_max=100, count_recipients=True)
    items = [Item(recipients=30)] * 5
    reservation = reserve(limits, State(), T0, items)
    assert reservation.allowed == 3 and reservation.state.day_count == 90
    assert reserve(Limits(daily_max=100), State(), T0, items).allowed == 5
    # by default a mail costs its SMTP messages (Odoo sends one per partner recipient)
    per_partner = [Item(recipients=3, messages=3)] * 5
    assert reserve(Limits(daily_max=10), State(), T0, per_partner).allowed == 3
    assert too_big(limits, Item(recipients=101)) and not too_big(limits, Item(recipients=100))


def test_combined_limits_report_the_binding_one():
    limits = Limits(flood_max=20, flood_pause=60, hourly_max=30)
    allowed, state, reservation = _send_at(limits, State(), T0, 100)
    assert (allowed, reservation.blocked_by) == (20, "flood")
    allowed, state, reservation = _send_at(limits, state, T0 + timedelta(seconds=60), 100)
    assert (allowed, reservation.blocked_by, reservation.next_slot) == (10, "hourly", datetime(2026, 3, 2, 10))


def test_remaining_and_eta():
    limits = Limits(flood_max=20, flood_pause=60, daily_max=50)
    _, state, _ = _send_at(limits, State(), T0, 20)
    left = remaining(limits, state, T0)
    assert left["flood"] == (0, T0 + timedelta(seconds=60))
    assert left["daily"] == (30, datetime(2026, 3, 3))
    # 25 more: 20 after one pause, 5 after a second pause
    assert eta(limits, state, T0, 25) == T0 + timedelta(seconds=120)
    # 40 more: the daily cap (30 left) pushes the rest to tomorrow
    assert eta(limits, state, T0, 40) == datetime(2026, 3, 3)
    assert eta(limits, state, T0, 0) is None
    assert eta(Limits(), State(), T0, 5) == T0


@pytest.mark.parametrize("per_window", [1, 7, 500])
def test_never_more_than_allowed_in_any_throttle_window(per_window):
    """Simulate a busy queue asking every 10 s for a day: no window ever holds more than N."""
    limits = Limits(throttle_max=per_window, throttle_seconds=3600)
    state, sent = State(), []
    for step in range(0, 24 * 3600, 10):
        at = T0 + timedelta(seconds=step)
        reservation = reserve(limits, state, at, [Item()] * 1000)
        state = reservation.state
        sent += [at] * reservation.allowed
    starts = sorted(set(sent))
    for start in starts:
        in_window = sum(1 for t in sent if start <= t < start + timedelta(hours=1))
        assert in_window <= per_window
    assert len(sent) >= per_window * 23  # and the allowed rate is used


# -- issue 14: a mail that never fits a window, giving back, back-off ---------------------------------
def test_mail_larger_than_a_window_is_split_by_message_and_never_blocks_forever():
    """10 per hour, one mail to 11 partners (11 SMTP messages), then a one-recipient mail."""
    limits = Limits(hourly_max=10)
    big, small = Item(recipients=11, messages=11, parts=(1,) * 11), Item(parts=(1,))
    reservation = reserve(limits, State(), T0, [big, small])
    assert reservation.grants == ((0, 10),), "10 of the big mail's 11 messages go in this hour"
    assert (reservation.blocked_by, reservation.next_slot) == ("hourly", datetime(2026, 3, 2, 10))
    # next hour: the last message of the big mail, then the small mail
    rest = Item(recipients=1, messages=1, parts=(1,))
    reservation = reserve(limits, reservation.state, datetime(2026, 3, 2, 10), [rest, small])
    assert reservation.grants == ((0, None), (1, None)) and reservation.next_slot is None


def test_a_mail_that_fits_a_later_window_waits_whole_its_turn():
    limits = Limits(hourly_max=10)
    _, state, _ = _send_at(limits, State(), T0, 8)
    reservation = reserve(limits, state, T0, [Item(messages=5, recipients=5, parts=(1,) * 5)])
    assert reservation.grants == () and reservation.blocked_by == "hourly"


def test_unsplittable_mail_over_a_window_is_refused_at_once_and_others_go():
    """Counting recipients, one SMTP message to 150 addresses can never fit 100 per day."""
    limits = Limits(daily_max=100, count_recipients=True)
    huge, small = Item(recipients=150, parts=(150,)), Item()
    reservation = reserve(limits, State(), T0, [huge, small])
    assert [(r.index, r.limit, r.cap, r.cost) for r in reservation.refused] == [(0, "daily", 100, 150)]
    assert reservation.refused[0].excess == 50
    assert reservation.grants == ((1, None),) and reservation.next_slot is None
    # without parts (an item of old) the same holds: refused, not blocking
    assert reserve(limits, State(), T0, [Item(recipients=101), small]).grants == ((1, None),)


def test_release_gives_back_what_was_reserved_and_not_sent():
    limits = Limits(daily_max=500, hourly_max=100, throttle_max=50, throttle_seconds=3600, batch_max_count=20)
    reservation = reserve(limits, State(), T0, [Item()] * 20)
    state = release(limits, reservation.state, reservation.state, cost=19, mails=19)
    assert (state.day_count, state.hour_count, state.throttle_count, state.batch_count) == (1, 1, 1, 1)
    # a reservation of a window that has passed is not given back to the new window
    later = refresh(limits, reservation.state, T0 + timedelta(hours=1))
    later = reserve(limits, later, T0 + timedelta(hours=1), [Item()] * 5).state
    state = release(limits, later, reservation.state, cost=19, mails=19)
    assert state.hour_count == 5 and state.day_count == 6
    assert release(limits, State(), reservation.state, cost=3).day_count == 0, "never below zero"


def test_retry_schedule_backs_off_then_gives_up_after_the_maximum_age():
    delays = [retry_delay(attempt) for attempt in range(1, 7)]
    assert delays == [timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1)] + [timedelta(hours=4)] * 3
    first = T0
    assert next_retry(T0, 1, first, max_age_hours=72) == T0 + timedelta(minutes=5)
    assert next_retry(T0 + timedelta(hours=71), 9, first, 72) == T0 + timedelta(hours=72), "capped at the age"
    assert next_retry(T0 + timedelta(hours=72), 10, first, 72) is None, "too old: fail with the last reason"
