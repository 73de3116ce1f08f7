"""Sending limits of one server: how much may go now, and when the next slot opens.

Pure arithmetic on plain values; the Odoo side keeps :class:`State` in a
PostgreSQL row per server, locks it, asks :func:`reserve`, and writes the new
state back in the same short transaction, so every worker on every machine sees
the same counters.

Limits (each off when its count is 0):

throttle   at most ``throttle_max`` per ``throttle_seconds``; the window starts
           with the first message and resets only when the duration has passed
           since then (500 per 24 hours).
anti-flood after ``flood_max`` messages pause ``flood_pause`` seconds; the counter
           resets when more than ``flood_pause`` seconds passed since the last
           message (20 messages, 60 seconds).
hourly     at most ``hourly_max`` per clock hour (UTC).
daily      at most ``daily_max`` per calendar day (UTC).
batch      at most ``batch_max_count`` mails and ``batch_max_bytes`` per run,
           runs at least ``batch_interval`` seconds apart (500 per 5 minutes,
           80 MB per batch).

Each mail costs its number of SMTP messages (Odoo sends one per partner
recipient); with ``count_recipients`` it costs its number of recipients, as
Google and Microsoft count.

A mail that costs more than a whole window allows never waits for a window it
cannot fit: when it is made of several SMTP messages (``Item.parts``) it is
split, as many messages going now as fit and the rest in the next windows;
when it cannot be split it is refused at once (:class:`Refusal`, naming the
limit and by how much), and the mails after it go on.

Retries after a temporary refusal back off (:func:`retry_delay`: 5 min,
15 min, 1 h, then every 4 h) until a maximum age (:func:`next_retry`).
"""

import itertools
from dataclasses import dataclass, replace
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Limits:
    throttle_max: int = 0
    throttle_seconds: int = 0
    flood_max: int = 0
    flood_pause: int = 0
    hourly_max: int = 0
    daily_max: int = 0
    batch_max_count: int = 0
    batch_max_bytes: int = 0
    batch_interval: int = 0
    count_recipients: bool = False

    @property
    def any(self):
        return bool(
            (self.throttle_max and self.throttle_seconds)
            or (self.flood_max and self.flood_pause)
            or self.hourly_max
            or self.daily_max
            or self.batch_max_count
            or self.batch_max_bytes
        )


@dataclass(frozen=True)
class State:
    throttle_start: datetime | None = None
    throttle_count: int = 0
    flood_count: int = 0
    flood_last: datetime | None = None
    hour_start: datetime | None = None
    hour_count: int = 0
    day_start: datetime | None = None
    day_count: int = 0
    batch_start: datetime | None = None
    batch_count: int = 0
    batch_bytes: int = 0


@dataclass(frozen=True)
class Item:
    """One mail waiting to go: its SMTP messages (one per recipient group), recipients and bytes.

    ``parts`` lists the recipients of each SMTP message still to send, in sending
    order; a mail with several parts may be split across windows. Without parts
    the mail is one indivisible unit.
    """

    recipients: int = 1
    size: int = 0
    messages: int = 1
    parts: tuple = ()

    def part_costs(self, limits):
        if not self.parts:
            return (self.cost(limits),)
        return tuple(max(part, 1) if limits.count_recipients else 1 for part in self.parts)

    def cost(self, limits):
        if self.parts:
            return sum(self.part_costs(limits))
        return max(self.recipients if limits.count_recipients else self.messages, 1)


@dataclass(frozen=True)
class Refusal:
    """An item that can never fit: ``cost`` (of the whole, or of its largest message) over ``cap`` of ``limit``."""

    index: int
    limit: str
    cap: int
    cost: int

    @property
    def excess(self):
        return self.cost - self.cap


@dataclass(frozen=True)
class Reservation:
    allowed: int  # how many items were granted whole
    state: State  # the state once they are counted
    next_slot: datetime | None  # when the first item that did not fit may go (None: all fit)
    blocked_by: str | None  # the limit that stopped the next item: throttle, flood, hourly, daily, batch
    grants: tuple = ()  # (index, parts): items that may go now, whole (parts None) or their first ``parts`` messages
    refused: tuple = ()  # Refusal: items that can never fit, to fail at once


def _hour(now):
    return now.replace(minute=0, second=0, microsecond=0)


def _day(now):
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def refresh(limits, state, now):
    """Reset the windows that have passed at ``now``."""
    changes = {}
    if state.throttle_start and (
        not limits.throttle_seconds or now >= state.throttle_start + timedelta(seconds=limits.throttle_seconds)
    ):
        changes.update(throttle_start=None, throttle_count=0)
    if state.flood_last and now - state.flood_last >= timedelta(seconds=limits.flood_pause or 0):
        changes.update(flood_count=0)
    if state.hour_start != _hour(now):
        changes.update(hour_start=_hour(now), hour_count=0)
    if state.day_start != _day(now):
        changes.update(day_start=_day(now), day_count=0)
    if state.batch_start and now >= state.batch_start + timedelta(seconds=limits.batch_interval or 0):
        changes.update(batch_start=None, batch_count=0, batch_bytes=0)
    return replace(state, **changes) if changes else state


def _blocker(limits, state, now, cost, size):
    """(limit name, time it frees) if one more item of ``cost``/``size`` does not fit, else None."""
    if limits.throttle_max and limits.throttle_seconds and state.throttle_count + cost > limits.throttle_max:
        start = state.throttle_start or now
        return "throttle", start + timedelta(seconds=limits.throttle_seconds)
    if limits.flood_max and limits.flood_pause and state.flood_count + cost > limits.flood_max:
        return "flood", (state.flood_last or now) + timedelta(seconds=limits.flood_pause)
    if limits.hourly_max and state.hour_count + cost > limits.hourly_max:
        return "hourly", _hour(now) + timedelta(hours=1)
    if limits.daily_max and state.day_count + cost > limits.daily_max:
        return "daily", _day(now) + timedelta(days=1)
    if limits.batch_max_count and state.batch_count + 1 > limits.batch_max_count:
        return "batch", (state.batch_start or now) + timedelta(seconds=limits.batch_interval or 0)
    if limits.batch_max_bytes and state.batch_bytes + size > limits.batch_max_bytes and state.batch_count:
        return "batch", (state.batch_start or now) + timedelta(seconds=limits.batch_interval or 0)
    return None


def _count(limits, state, now, cost, size):
    return replace(
        state,
        throttle_start=state.throttle_start or (now if limits.throttle_max else None),
        throttle_count=state.throttle_count + cost if limits.throttle_max else state.throttle_count,
        flood_count=state.flood_count + cost,
        flood_last=now,
        hour_count=state.hour_count + cost,
        day_count=state.day_count + cost,
        batch_start=state.batch_start or now,
        batch_count=state.batch_count + 1,
        batch_bytes=state.batch_bytes + size,
    )


def _never_fits(limits, cost):
    """(limit, cap) of the first window that can never hold ``cost``, else None."""
    windows = (
        ("throttle", limits.throttle_max if limits.throttle_seconds else 0),
        ("flood", limits.flood_max if limits.flood_pause else 0),
        ("hourly", limits.hourly_max),
        ("daily", limits.daily_max),
    )
    return next(((name, cap) for name, cap in windows if cap and cost > cap), None)


def too_big(limits, item):
    """True when an item can never fit (costs more than a whole window allows)."""
    return _never_fits(limits, item.cost(limits)) is not None


def reserve(limits, state, now, items):
    """Count as many ``items`` as fit now, in order; stop at the first that does not.

    An item larger than a whole window does not stop the others: split (its first
    messages now) when it has several parts, else refused.

    >>> from datetime import datetime
    >>> t0 = datetime(2026, 1, 1, 9, 0, 0)
    >>> r = reserve(Limits(flood_max=20, flood_pause=60), State(), t0, [Item()] * 50)
    >>> r.allowed, r.next_slot, r.blocked_by
    (20, datetime.datetime(2026, 1, 1, 9, 1), 'flood')
    >>> r = reserve(Limits(hourly_max=10), State(), t0, [Item(parts=(1,) * 11), Item()])
    >>> r.grants, r.next_slot
    (((0, 10),), datetime.datetime(2026, 1, 1, 10, 0))
    """
    state = refresh(limits, state, now)
    allowed, grants, refused = 0, [], []
    for index, item in enumerate(items):
        costs = item.part_costs(limits)
        cost = sum(costs)
        unit = max(costs)  # the largest piece that must fit in one window
        impossible = _never_fits(limits, unit)
        if impossible:
            refused.append(Refusal(index, impossible[0], impossible[1], unit))
            continue
        blocked = _blocker(limits, state, now, cost, item.size)
        if not blocked:
            state = _count(limits, state, now, cost, item.size)
            grants.append((index, None))
            allowed += 1
            continue
        if len(costs) > 1 and _never_fits(limits, cost):
            taken = used = 0
            while taken < len(costs) and not _blocker(limits, state, now, used + costs[taken], item.size):
                used += costs[taken]
                taken += 1
            if taken:
                state = _count(limits, state, now, used, item.size)
                grants.append((index, taken))
                blocked = _blocker(limits, state, now, costs[taken], item.size) or blocked
        return Reservation(allowed, state, blocked[1], blocked[0], tuple(grants), tuple(refused))
    return Reservation(allowed, state, None, None, tuple(grants), tuple(refused))


def granted_costs(limits, items, grants):
    """{item index: (units, bytes)} that a reservation's ``grants`` count: whole items, or their first parts.

    >>> granted_costs(Limits(hourly_max=10), [Item(parts=(1,) * 11, size=5), Item(size=7)], ((0, 10),))
    {0: (10, 5)}
    >>> granted_costs(Limits(daily_max=9, count_recipients=True), [Item(recipients=3)], ((0, None),))
    {0: (3, 0)}
    """
    costs = {}
    for index, parts in grants:
        item = items[index]
        part_costs = item.part_costs(limits)
        costs[index] = (sum(part_costs[:parts] if parts else part_costs), item.size)
    return costs


def release(limits, state, reserved, cost, mails=0, size=0):
    """Give back ``cost`` units (and ``mails``, ``size`` of the batch) reserved and not sent.

    ``reserved`` is the state the reservation left: only the windows that are
    still the ones it counted in get the units back; never below zero.
    """
    changes = {}
    if state.throttle_start and state.throttle_start == reserved.throttle_start:
        changes["throttle_count"] = max(state.throttle_count - cost, 0)
    if state.flood_count and state.flood_last and reserved.flood_last and state.flood_last >= reserved.flood_last:
        changes["flood_count"] = max(state.flood_count - cost, 0)
    if state.hour_start == reserved.hour_start:
        changes["hour_count"] = max(state.hour_count - cost, 0)
    if state.day_start == reserved.day_start:
        changes["day_count"] = max(state.day_count - cost, 0)
    if state.batch_start and state.batch_start == reserved.batch_start:
        changes.update(batch_count=max(state.batch_count - mails, 0), batch_bytes=max(state.batch_bytes - size, 0))
    return replace(state, **changes) if changes else state


BACKOFF_SECONDS = (300, 900, 3600, 14400)  # then every 4 hours


def retry_delay(attempt):
    """How long to wait after the ``attempt``-th temporary failure (1-based).

    >>> [str(retry_delay(n)) for n in (1, 2, 3, 4, 5)]
    ['0:05:00', '0:15:00', '1:00:00', '4:00:00', '4:00:00']
    """
    return timedelta(seconds=BACKOFF_SECONDS[min(max(attempt, 1), len(BACKOFF_SECONDS)) - 1])


def next_retry(now, attempt, first_failure, max_age_hours):
    """When to try again after the ``attempt``-th temporary failure; None once the maximum age is reached.

    The last try is never later than ``first_failure`` plus the maximum age.
    """
    give_up = first_failure + timedelta(hours=max_age_hours)
    if now >= give_up:
        return None
    return min(now + retry_delay(attempt), give_up)


def finish_batch(limits, state, now):
    """After the reserved mails went out: the anti-flood pause counts from the last real send."""
    if state.flood_count and limits.flood_max:
        return replace(state, flood_last=now)
    return state


def remaining(limits, state, now):
    """What is left in each window at ``now``: {limit: (left, resets_at)} for the limits that are on."""
    state = refresh(limits, state, now)
    left = {}
    if limits.throttle_max and limits.throttle_seconds:
        resets = state.throttle_start + timedelta(seconds=limits.throttle_seconds) if state.throttle_start else None
        left["throttle"] = (limits.throttle_max - state.throttle_count, resets)
    if limits.flood_max and limits.flood_pause:
        resets = state.flood_last + timedelta(seconds=limits.flood_pause) if state.flood_count else None
        left["flood"] = (limits.flood_max - state.flood_count, resets)
    if limits.hourly_max:
        left["hourly"] = (limits.hourly_max - state.hour_count, _hour(now) + timedelta(hours=1))
    if limits.daily_max:
        left["daily"] = (limits.daily_max - state.day_count, _day(now) + timedelta(days=1))
    if limits.batch_max_count:
        resets = state.batch_start + timedelta(seconds=limits.batch_interval) if state.batch_start else None
        left["batch"] = (limits.batch_max_count - state.batch_count, resets)
    return left


def eta(limits, state, now, queued, horizon=10000):
    """When ``queued`` single-recipient mails would all be out, if nothing else were sent.

    Steps through the windows with :func:`reserve`; None when nothing is queued,
    ``now`` when no limit applies.
    """
    if queued <= 0:
        return None
    if not limits.any:
        return now
    at, left = now, queued
    for _ in range(horizon):
        reservation = reserve(limits, state, at, itertools.repeat(Item(), left))
        left -= reservation.allowed
        state = reservation.state
        if left <= 0:
            return at
        if reservation.next_slot is None or reservation.next_slot <= at:
            return None
        at = reservation.next_slot
    return None
