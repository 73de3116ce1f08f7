# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Per-server counters and health, shared by every worker through PostgreSQL.

Each change happens in a short transaction of its own that locks the server's
row (``SELECT ... FOR UPDATE``), computes with ``tools.limits`` and commits at
once: a reservation is visible to every other worker before the first message
goes out, and it stays counted even if the sending transaction later rolls
back (the mail went out; the provider counted it); what was reserved and not
sent is given back (:meth:`_smtp_routing_release`). Windows and cooldowns are
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

from ..tools import limits as limits_tool

STATE_FIELDS = tuple(asdict(limits_tool.State()).keys())
_DEFAULTS = asdict(limits_tool.State())
MIN_COOLDOWN_SECONDS = 5  # a cooldown of 0 would wake the queue every second: a retry storm
# PostgreSQL's clock, in UTC without time zone as Odoo stores datetimes (clock_timestamp: not the transaction start).
DB_NOW_SQL = "date_trunc('second', clock_timestamp() AT TIME ZONE 'UTC')"


def db_now(cr):
    """The database server's current time (UTC, naive, whole seconds): the one clock every worker shares."""
    cr.execute(f"SELECT {DB_NOW_SQL}")  # noqa: S608 - a constant expression
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
            f"SELECT {', '.join(STATE_FIELDS)}, cooldown_until, failures "  # noqa: S608 - constant column names
            "FROM smtp_routing_server_state WHERE server_id = %s FOR UPDATE",
            [server_id],
        )
        row = env.cr.dictfetchone()
        return row

    @api.model
    def _smtp_routing_write(self, env, server_id, values):
        columns = ", ".join(f"{name} = %s" for name in values)
        env.cr.execute(
            f"UPDATE smtp_routing_server_state SET {columns} WHERE server_id = %s",  # noqa: S608 - our own names
            [*values.values(), server_id],
        )

    # -- limits -----------------------------------------------------------------------------
    @api.model
    def _smtp_routing_reserve(self, server, items):
        """Reserve room for ``items`` (tools.limits.Item) on ``server``; returns a Reservation."""
        limits = server._smtp_routing_limits()
        if not limits.any:
            return limits_tool.Reservation(len(items), limits_tool.State(), None, None)
        with self._smtp_routing_cursor() as env:
            row = self._smtp_routing_lock(env, server.id)
            reservation = limits_tool.reserve(limits, state_from_row(row), db_now(env.cr), items)
            self._smtp_routing_write(env, server.id, asdict(reservation.state))
        return reservation

    @api.model
    def _smtp_routing_release(self, server, reserved, cost, mails=0, size=0):
        """Give back what a reservation (its resulting state ``reserved``) counted and was not sent."""
        limits = server._smtp_routing_limits()
        if not limits.any or (cost <= 0 and mails <= 0):
            return
        with self._smtp_routing_cursor() as env:
            row = self._smtp_routing_lock(env, server.id)
            state = limits_tool.release(limits, state_from_row(row), reserved, cost, mails, size)
            self._smtp_routing_write(env, server.id, asdict(state))

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
            f"SELECT server_id, {', '.join(STATE_FIELDS)}, cooldown_until, failures, last_failure_category "  # noqa: S608
            "FROM smtp_routing_server_state WHERE server_id IN %s",
            [tuple(servers.ids)],
        )
        return {row["server_id"]: row for row in self.env.cr.dictfetchall()}
