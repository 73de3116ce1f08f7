# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The sending engine: what happens to queued mail between Odoo's queue and the delivery log.

- :mod:`.run`: one queue run (claim, plan, reserve, connect, send, classify once, record), the counterpart of
  Odoo's ``mail.mail._send``;
- :mod:`.transport`: the pieces under each SMTP session (time-out, TLS, pinned addresses, redacted debug
  output), put in place by :func:`.transport.install`.

- :mod:`.explain`: the planner's reason codes in words, in the reader's language (*Which Server?*, a
  mail's stored routing).

The decisions the engine acts on are plain functions in ``smtp_routing.tools`` (``planning`` for routing,
limits, Send-As, error classification); the engine reads facts from the database, asks them, acts, and
records.
"""
