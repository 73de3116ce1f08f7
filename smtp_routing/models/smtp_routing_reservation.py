# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The ledger of open quota reservations: what a sending worker holds of a server's limits.

A queue run reserves room under a server's limits before it connects (one short committed
transaction: :mod:`.smtp_routing_server_state`). The same transaction opens a row here naming
the run's PostgreSQL backend (pid and start time) and the windows the reservation counted in.
Before each chunk of mails goes, the run commits how much of the reservation is *at risk* (the
mails of every chunk it started: sent, or possibly sent). When the run ends, the unused part goes
back and the row is deleted, in one transaction.

A worker killed meanwhile (SIGKILL, out of memory, a lost machine) leaves its row behind. The
next run takes it over once the backend named in it is gone from ``pg_stat_activity``: it gives
back what was reserved and not at risk, and deletes the row, in one transaction, with the row
locked (``SKIP LOCKED``): exactly once, whoever else recovers at the same time. Mails of the
chunk in flight at the kill stay counted (they may have gone): the limit is never exceeded.
"""

from dataclasses import asdict

from odoo import api, fields, models
from odoo.tools import SQL

from ..tools import limits as limits_tool
from .smtp_routing_server_state import db_now, state_from_row

WINDOW_KEYS = ("throttle_start", "flood_last", "hour_start", "day_start", "batch_start")
# A holder is alive while its backend (same pid, same start) is connected.
DEAD_HOLDER = SQL(
    "NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = r.holder_pid "
    "AND (a.backend_start IS NULL OR r.holder_started IS NULL "
    "OR (a.backend_start AT TIME ZONE 'UTC') = r.holder_started))"
)


def backend(cr):
    """(pid, start) of the cursor's PostgreSQL backend: who holds what it reserves."""
    cr.execute(
        "SELECT pg_backend_pid(), (SELECT backend_start AT TIME ZONE 'UTC' FROM pg_stat_activity "
        "WHERE pid = pg_backend_pid())"
    )
    return cr.fetchone()


class SmtpRoutingReservation(models.Model):
    _name = "smtp_routing.reservation"
    _description = "Open SMTP Quota Reservation"
    _log_access = False

    server_id = fields.Many2one("ir.mail_server", required=True, ondelete="cascade", index=True)
    holder_pid = fields.Integer(required=True, help="PostgreSQL backend of the run that holds the reservation.")
    holder_started = fields.Datetime(help="When that backend started (a pid may be reused later).")
    units = fields.Integer(help="Units counted against the limits (messages, or recipients).")
    mails = fields.Integer()
    size = fields.Integer()
    units_at_risk = fields.Integer(help="Units of the mails the run started sending: never given back.")
    mails_at_risk = fields.Integer()
    size_at_risk = fields.Integer()
    # the windows the reservation counted in (tools.limits.release gives back only into these)
    throttle_start = fields.Datetime()
    flood_last = fields.Datetime()
    hour_start = fields.Datetime()
    day_start = fields.Datetime()
    batch_start = fields.Datetime()

    @api.model
    def _smtp_routing_open(self, server, items, holder, costs):
        """Reserve room for ``items`` on ``server`` and open the ledger row of what was granted.

        ``holder`` is the run's (pid, start); ``costs(reservation)`` says (units, mails, size) granted.
        Returns (tools.limits.Reservation, row id or None)."""
        State = self.env["smtp_routing.server.state"].sudo()
        limits = server._smtp_routing_limits()
        if not limits.any:
            return limits_tool.Reservation(len(items), limits_tool.State(), None, None), None
        with State._smtp_routing_cursor() as env:
            row = State._smtp_routing_lock(env, server.id)
            reservation = limits_tool.reserve(limits, state_from_row(row), db_now(env.cr), items)
            State._smtp_routing_write(env, server.id, asdict(reservation.state))
            row_id = None
            units, mails, size = costs(reservation)
            if units or mails:
                state = reservation.state
                env.cr.execute(
                    "INSERT INTO smtp_routing_reservation (server_id, holder_pid, holder_started, units, mails, size, "
                    "units_at_risk, mails_at_risk, size_at_risk, throttle_start, flood_last, hour_start, day_start, "
                    "batch_start) VALUES (%s, %s, %s, %s, %s, %s, 0, 0, 0, %s, %s, %s, %s, %s) RETURNING id",
                    [server.id, *holder, units, mails, size, *(getattr(state, key) for key in WINDOW_KEYS)],
                )
                row_id = env.cr.fetchone()[0]
        return reservation, row_id

    @api.model
    def _smtp_routing_at_risk(self, row_id, units, mails, size):
        """Before a chunk goes: from now on, this much of the reservation may have been sent (committed at once)."""
        State = self.env["smtp_routing.server.state"].sudo()
        with State._smtp_routing_cursor() as env:
            env.cr.execute(
                "UPDATE smtp_routing_reservation SET units_at_risk = GREATEST(units_at_risk, %s), "
                "mails_at_risk = GREATEST(mails_at_risk, %s), size_at_risk = GREATEST(size_at_risk, %s) "
                "WHERE id = %s",
                [units, mails, size, row_id],
            )

    @api.model
    def _smtp_routing_close(self, server, row_id, reserved, cost, mails, size):
        """The run is done with its reservation: give back ``cost`` (and ``mails``, ``size``) and close the row,
        in one transaction. A row already taken over is not given back a second time."""
        State = self.env["smtp_routing.server.state"].sudo()
        limits = server._smtp_routing_limits()
        with State._smtp_routing_cursor() as env:
            row = State._smtp_routing_lock(env, server.id)
            if row_id:
                env.cr.execute("DELETE FROM smtp_routing_reservation WHERE id = %s RETURNING id", [row_id])
                if not env.cr.fetchone():
                    return
            if limits.any and (cost > 0 or mails > 0):
                state = limits_tool.release(limits, state_from_row(row), reserved, cost, mails, size)
                State._smtp_routing_write(env, server.id, asdict(state))

    @api.model
    def _smtp_routing_take_over(self):
        """Give back the reservations of runs whose backend is gone (what they held and had not started to send),
        once each. Returns how many were taken over."""
        self.env.cr.execute(SQL("SELECT 1 FROM smtp_routing_reservation r WHERE %s LIMIT 1", DEAD_HOLDER))
        if not self.env.cr.fetchone():
            return 0  # the usual case: no transaction of its own
        State = self.env["smtp_routing.server.state"].sudo()
        Server = self.env["ir.mail_server"].sudo().with_context(active_test=False)
        with State._smtp_routing_cursor() as env:
            env.cr.execute(
                SQL(
                    "SELECT id FROM smtp_routing_reservation r WHERE %s ORDER BY id FOR UPDATE SKIP LOCKED",
                    DEAD_HOLDER,
                )
            )
            ids = [row[0] for row in env.cr.fetchall()]
            if not ids:
                return 0
            env.cr.execute(
                "DELETE FROM smtp_routing_reservation WHERE id IN %s RETURNING server_id, units - units_at_risk, "
                f"mails - mails_at_risk, size - size_at_risk, {', '.join(WINDOW_KEYS)}",  # noqa: S608 - constants
                [tuple(ids)],
            )
            for server_id, units, mails, size, *windows in sorted(env.cr.fetchall()):
                server = Server.browse(server_id)
                limits = server._smtp_routing_limits()
                if not limits.any or (units <= 0 and mails <= 0):
                    continue
                row = State._smtp_routing_lock(env, server_id)
                reserved = limits_tool.State(**dict(zip(WINDOW_KEYS, windows, strict=True)))
                given = (max(units, 0), max(mails, 0), max(size, 0))
                state = limits_tool.release(limits, state_from_row(row), reserved, *given)
                State._smtp_routing_write(env, server_id, asdict(state))
        return len(ids)
