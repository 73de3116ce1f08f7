# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Per-server counters and health, shared by every worker through PostgreSQL, and the queue status
(health, quota bars and their captions, queued mail) that the server form shows from them.

Each change happens in a short transaction of its own that locks the server's
row (``SELECT ... FOR UPDATE``), computes with ``tools.limits`` and commits at
once: a reservation is visible to every other worker before the first message
goes out, and it stays counted even if the sending transaction later rolls
back (the mail went out; the provider counted it); what was reserved and not
sent is given back. Reservations themselves, with their ledger rows, are
``smtp_routing.reservation``'s (``_smtp_routing_open`` / ``_smtp_routing_close``,
and the take-over of a dead worker's). Windows and cooldowns are
computed on PostgreSQL's clock (:func:`db_now`), never on a worker's own, so
workers on machines whose clocks differ share the same hour and day. Under
Odoo's test runner, where commits are forbidden, the same statements run in
the test's cursor.
"""

import contextlib
import threading
from dataclasses import asdict
from datetime import timedelta

from odoo import api, fields, models
from odoo.tools import SQL
from odoo.tools.misc import format_datetime

from ..tools import limits as limits_tool

STATE_FIELDS = tuple(asdict(limits_tool.State()).keys())
_DEFAULTS = asdict(limits_tool.State())
MIN_COOLDOWN_SECONDS = 5  # a cooldown of 0 would wake the queue every second: a retry storm
# PostgreSQL's clock, in UTC without time zone as Odoo stores datetimes (clock_timestamp: not the transaction start).
DB_NOW = SQL("date_trunc('second', clock_timestamp() AT TIME ZONE 'UTC')")


def db_now(cr):
    """The database server's current time (UTC, naive, whole seconds): the one clock every worker shares."""
    cr.execute(SQL("SELECT %s", DB_NOW))
    return cr.fetchone()[0]


def state_from_row(row):
    """tools.limits.State from a state row (or {}); NULL columns take the dataclass defaults."""
    row = row or {}
    return limits_tool.State(
        **{name: row.get(name) if row.get(name) is not None else _DEFAULTS[name] for name in STATE_FIELDS}
    )


class SmtpRoutingServerState(models.Model):
    _name = "smtp_routing.server.state"
    _description = "SMTP Server Counters and Health"
    _log_access = False

    server_id = fields.Many2one("ir.mail_server", required=True, ondelete="cascade", index=True)
    throttle_start = fields.Datetime()
    throttle_count = fields.Integer()
    flood_count = fields.Integer()
    flood_last = fields.Datetime()
    hour_start = fields.Datetime()
    hour_count = fields.Integer()
    day_start = fields.Datetime()
    day_count = fields.Integer()
    batch_start = fields.Datetime()
    batch_count = fields.Integer()
    batch_bytes = fields.Integer()
    cooldown_until = fields.Datetime()
    failures = fields.Integer(help="Consecutive failed attempts; reset by a success.")
    last_failure_category = fields.Char()

    _sql_constraints = [("server_unique", "UNIQUE(server_id)", "One state row per server.")]

    # -- transactions ---------------------------------------------------------------------
    @contextlib.contextmanager
    def _smtp_routing_cursor(self):
        """An environment whose changes are committed at once (the test cursor under tests)."""
        if getattr(threading.current_thread(), "testing", False):
            self.flush_model()
            with self.env.cr.savepoint(flush=False):
                yield self.env
            self.invalidate_model()
            return
        with self.env.registry.cursor() as cr:
            yield api.Environment(cr, self.env.uid, self.env.context)

    @api.model
    def _smtp_routing_lock(self, env, server_id):
        """Lock (creating if needed) the state row of a server; returns its column values."""
        env.cr.execute(
            "INSERT INTO smtp_routing_server_state (server_id) VALUES (%s) ON CONFLICT (server_id) DO NOTHING",
            [server_id],
        )
        env.cr.execute(
            SQL(
                "SELECT %s, cooldown_until, failures FROM smtp_routing_server_state WHERE server_id = %s FOR UPDATE",
                SQL(", ").join(SQL.identifier(name) for name in STATE_FIELDS),
                server_id,
            )
        )
        row = env.cr.dictfetchone()
        return row

    @api.model
    def _smtp_routing_write(self, env, server_id, values):
        columns = SQL(", ").join(SQL("%s = %s", SQL.identifier(name), value) for name, value in values.items())
        env.cr.execute(SQL("UPDATE smtp_routing_server_state SET %s WHERE server_id = %s", columns, server_id))

    # -- limits -----------------------------------------------------------------------------
    @api.model
    def _smtp_routing_finish_batch(self, server):
        limits = server._smtp_routing_limits()
        if not (limits.flood_max and limits.flood_pause):
            return
        with self._smtp_routing_cursor() as env:
            row = self._smtp_routing_lock(env, server.id)
            state = limits_tool.finish_batch(limits, state_from_row(row), db_now(env.cr))
            self._smtp_routing_write(env, server.id, {"flood_last": state.flood_last})

    # -- health -------------------------------------------------------------------------------
    @api.model
    def _smtp_routing_health(self, servers):
        """({server id: cooldown end} for servers cooling down now, {ids of servers with recent failures})."""
        if not servers:
            return {}, set()
        self.flush_model()
        now = db_now(self.env.cr)
        self.env.cr.execute(
            "SELECT server_id, cooldown_until, failures FROM smtp_routing_server_state "
            "WHERE server_id IN %s AND (cooldown_until IS NOT NULL OR failures > 0)",
            [tuple(servers.ids)],
        )
        cooling, failing = {}, set()
        for server_id, until, _failures in self.env.cr.fetchall():
            failing.add(server_id)
            if until and until > now:
                cooling[server_id] = until
        return cooling, failing

    @api.model
    def _smtp_routing_failed(self, server, category):
        """Start (or extend) a server's cooldown after a failure that another server may not have.

        At least ``MIN_COOLDOWN_SECONDS``, whatever the server's setting."""
        seconds = max(server.smtp_routing_cooldown_seconds, MIN_COOLDOWN_SECONDS)
        with self._smtp_routing_cursor() as env:
            until = db_now(env.cr) + timedelta(seconds=seconds)
            self._smtp_routing_lock(env, server.id)
            env.cr.execute(
                "UPDATE smtp_routing_server_state SET cooldown_until = %s, failures = failures + 1, "
                "last_failure_category = %s WHERE server_id = %s",
                [until, category, server.id],
            )
        return until

    @api.model
    def _smtp_routing_succeeded(self, server):
        with self._smtp_routing_cursor() as env:
            env.cr.execute(
                "UPDATE smtp_routing_server_state SET cooldown_until = NULL, failures = 0, "
                "last_failure_category = NULL WHERE server_id = %s AND (failures > 0 OR cooldown_until IS NOT NULL)",
                [server.id],
            )

    @api.model
    def _smtp_routing_read(self, servers):
        """{server id: row dict} without locking, for display."""
        if not servers.ids:
            return {}
        self.flush_model()
        self.env.cr.execute(
            SQL(
                "SELECT server_id, %s, cooldown_until, failures, last_failure_category "
                "FROM smtp_routing_server_state WHERE server_id IN %s",
                SQL(", ").join(SQL.identifier(name) for name in STATE_FIELDS),
                tuple(servers.ids),
            )
        )
        return {row["server_id"]: row for row in self.env.cr.dictfetchall()}

    # -- what the server form shows (ir.mail_server's status fields) ------------------------
    @api.model
    def _smtp_routing_limits(self, server):
        """``server``'s limits as tools.limits.Limits (each off at 0)."""
        server.ensure_one()
        unit = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}.get(
            server.smtp_routing_throttle_unit or "hours", 3600
        )
        return limits_tool.Limits(
            throttle_max=max(server.smtp_routing_throttle_max, 0),
            throttle_seconds=max(server.smtp_routing_throttle_duration, 0) * unit,
            flood_max=max(server.smtp_routing_flood_max, 0),
            flood_pause=max(server.smtp_routing_flood_pause, 0),
            hourly_max=max(server.smtp_routing_hourly_max, 0),
            daily_max=max(server.smtp_routing_daily_max, 0),
            batch_max_count=max(server.smtp_routing_batch_max_count, 0),
            batch_max_bytes=int(max(server.smtp_routing_batch_max_mb, 0) * 1024 * 1024),
            batch_interval=max(server.smtp_routing_batch_interval, 0) * 60,
            count_recipients=server.smtp_routing_count_recipients,
        )

    @api.model
    def _smtp_routing_limit_names(self):
        """The limits as named in "reached its ... limit" (translated)."""
        return {
            "throttle": self.env._("throttle"),
            "flood": self.env._("anti-flood"),
            "hourly": self.env._("hourly"),
            "daily": self.env._("daily"),
            "batch": self.env._("batch"),
        }

    @api.model
    def _smtp_routing_rate_text(self, count, duration, unit):
        """A limit as people say it: "10 per hour", "500 per 24 hours" (translated)."""
        if duration == 1:
            texts = {
                "seconds": self.env._("%(count)s per second", count=count),
                "minutes": self.env._("%(count)s per minute", count=count),
                "hours": self.env._("%(count)s per hour", count=count),
                "days": self.env._("%(count)s per day", count=count),
            }
        else:
            texts = {
                "seconds": self.env._("%(count)s per %(duration)s seconds", count=count, duration=duration),
                "minutes": self.env._("%(count)s per %(duration)s minutes", count=count, duration=duration),
                "hours": self.env._("%(count)s per %(duration)s hours", count=count, duration=duration),
                "days": self.env._("%(count)s per %(duration)s days", count=count, duration=duration),
            }
        return texts.get(unit or "hours", texts["hours"])

    @api.model
    def _smtp_routing_sent_since(self, server, since):
        """What the limits would have counted of ``server``'s delivery history since ``since``: mails, or
        recipients."""
        server.ensure_one()
        if not since or not server.id:
            return 0
        Log = self.env["smtp_routing.delivery.log"].sudo()
        domain = [("server_id", "=", server.id), ("outcome", "=", "sent"), ("date", ">=", since)]
        if server.smtp_routing_count_recipients:
            [(total,)] = Log._read_group(domain, aggregates=["recipient_count:sum"])
            return total or 0
        return Log.search_count(domain)

    @api.model
    def _smtp_routing_bar_caption(self, server, rate, counted, since):
        """``rate``, and a plain reason when the bar shows less than the history counts in the same window."""
        if since is None:
            return self.env._("%(rate)s - window not started: it starts with the next mail", rate=rate)
        sent = self._smtp_routing_sent_since(server, since)
        if sent > counted:
            return self.env._(
                "%(rate)s - counting since the limit was set (%(sent)s went out in this window in all)",
                rate=rate,
                sent=sent,
            )
        return rate

    @api.model
    def _smtp_routing_queue_status(self, servers):
        """Compute ``servers``' status fields (ir.mail_server's ``_compute_smtp_routing_queue_status``): health,
        quota left and its bars, cooldown, queued mail and when it will be out."""
        now = db_now(self.env.cr)  # the clock the queue's windows use
        failing, delivered = self.env["smtp_routing.delivery.log"]._smtp_routing_recent_failures(servers)
        rows = self.sudo()._smtp_routing_read(servers)
        queued = dict(
            self.env["mail.mail"]
            .sudo()
            ._read_group(
                [("state", "=", "outgoing"), ("smtp_routing_server_id", "in", servers.ids)],
                ["smtp_routing_server_id"],
                ["__count"],
            )
        )
        labels = {
            "throttle": self.env._("Throttle"),
            "flood": self.env._("Anti-flood"),
            "hourly": self.env._("This hour"),
            "daily": self.env._("Today"),
            "batch": self.env._("This batch"),
        }
        for server in servers:
            row = rows.get(server.id) or {}
            limits = self._smtp_routing_limits(server)
            state = limits_tool.refresh(limits, state_from_row(row), now)  # the windows as they stand now
            left = limits_tool.remaining(limits, state, now)
            cooldown = row.get("cooldown_until")
            cooldown = cooldown if cooldown and cooldown > now else False
            exhausted = [resets for value, resets in left.values() if value <= 0 and resets]
            server.smtp_routing_cooldown_until = cooldown
            server.smtp_routing_throttle_used = state.throttle_count
            server.smtp_routing_hourly_used = state.hour_count
            server.smtp_routing_daily_used = state.day_count
            server.smtp_routing_throttle_caption = (
                self._smtp_routing_bar_caption(
                    server,
                    self._smtp_routing_rate_text(
                        limits.throttle_max, server.smtp_routing_throttle_duration, server.smtp_routing_throttle_unit
                    ),
                    state.throttle_count,
                    state.throttle_start,
                )
                if limits.throttle_max and limits.throttle_seconds
                else False
            )
            server.smtp_routing_hourly_caption = (
                self._smtp_routing_bar_caption(
                    server,
                    self.env._("%(count)s per clock hour", count=limits.hourly_max),
                    state.hour_count,
                    state.hour_start,
                )
                if limits.hourly_max
                else False
            )
            server.smtp_routing_daily_caption = (
                self._smtp_routing_bar_caption(
                    server,
                    self.env._("%(count)s per day (UTC)", count=limits.daily_max),
                    state.day_count,
                    state.day_start,
                )
                if limits.daily_max
                else False
            )
            since, category, failures = failing.get(server.id) or (False, False, 0)
            server.smtp_routing_failing_since = since
            server.smtp_routing_failing_category = category
            server.smtp_routing_failing_count = failures
            if cooldown:
                server.smtp_routing_health = "cooling"
            elif since:
                server.smtp_routing_health = "failing"
            elif exhausted:
                server.smtp_routing_health = "limited"
            elif server.id not in delivered:
                server.smtp_routing_health = "never"
            else:
                server.smtp_routing_health = "healthy"
            server.smtp_routing_quota = "\n".join(
                self.env._("%(limit)s: %(left)s left", limit=labels[name], left=max(value, 0))
                + (self.env._(" (resets %(when)s)", when=format_datetime(self.env, resets)) if resets else "")
                for name, (value, resets) in left.items()
            ) or self.env._("No limit")
            server.smtp_routing_next_slot = max([cooldown] if cooldown else exhausted or [False]) or False
            count = queued.get(server, 0)
            server.smtp_routing_queued_count = count
            server.smtp_routing_queue_eta = limits_tool.eta(limits, state, max(now, cooldown or now), count) or False
