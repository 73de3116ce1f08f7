# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from datetime import datetime, timedelta

import pytz

from odoo import api, fields, models
from odoo.tools import email_normalize

from ..tools import readiness
from ..tools.bounces import CLASSES as BOUNCE_CLASSES
from ..tools.smtp_errors import CATEGORIES, Outcome, classified, describe
from . import params

CATEGORY_SELECTION = [
    ("auth", "Authentication failed"),
    ("password_retired", "Password sign-in retired: use OAuth"),
    ("oauth_revoked", "Sign-in revoked or expired (OAuth)"),
    ("connection_refused", "Connection refused"),
    ("dns", "DNS failure"),
    ("timeout", "Timeout"),
    ("tls", "TLS failure"),
    ("sender_rejected", "Sender rejected"),
    ("send_as_denied", "Send-As denied"),
    ("recipient_rejected", "Recipient rejected"),
    ("too_large", "Message too large"),
    ("temporary", "Temporary or rate-limited"),
    ("config", "Configuration error"),
    ("invalid_message", "Invalid message"),
    ("other", "Other"),
]
assert [code for code, _label in CATEGORY_SELECTION] == list(CATEGORIES)

BOUNCE_CLASS_SELECTION = [
    ("hard", "Hard bounce"),
    ("soft", "Soft bounce"),
    ("policy", "Blocked by policy"),
    ("other", "Other bounce"),
]
assert [code for code, _label in BOUNCE_CLASS_SELECTION] == list(BOUNCE_CLASSES)

SOURCE_SELECTION = [
    ("queue", "Queue"),
    ("send_now", "Send now"),
    ("test", "Test email"),
    ("direct", "Direct"),
    ("bounce", "Bounce report"),
]
RETENTION_PARAM = "smtp_routing.log_retention_days"
DEFAULT_RETENTION_DAYS = 90
BUFFER_KEY = "smtp_routing.delivery.log"
MAX_RECIPIENTS_TEXT = 500
# Failures that say something about one mail (its recipients, size, sender), not about the server.
MAIL_LEVEL_CATEGORIES = ("recipient_rejected", "too_large", "invalid_message", "send_as_denied", "sender_rejected")


class SmtpRoutingDeliveryLog(models.Model):
    _name = "smtp_routing.delivery.log"
    _description = "SMTP Delivery Attempt"
    _order = "date desc, id desc"
    _rec_name = "summary"

    date = fields.Datetime(required=True, default=fields.Datetime.now, index=True, readonly=True)
    server_id = fields.Many2one("ir.mail_server", index=True, ondelete="set null", readonly=True)
    server_name = fields.Char(readonly=True, help="Kept when the server is deleted.")
    mail_id = fields.Many2one("mail.mail", index="btree_not_null", ondelete="set null", readonly=True)
    message_id = fields.Char(string="Message-Id", readonly=True, index="btree_not_null")
    subject = fields.Char(readonly=True)
    email_from = fields.Char(string="From", readonly=True)
    recipients = fields.Char(readonly=True)
    recipient_count = fields.Integer(readonly=True, aggregator="sum")
    source = fields.Selection(SOURCE_SELECTION, required=True, default="direct", readonly=True)
    stage = fields.Selection(
        [("policy", "Checked before sending"), ("connect", "Connect"), ("send", "Send"), ("bounce", "After sending")],
        required=True,
        default="send",
        readonly=True,
        help="Checked before sending: refused by a rule (Send-As). Connect: the connection or login failed before "
        "any message. Send: one message's SMTP transaction. After sending: the server accepted the mail, and a "
        "bounce came back later.",
    )
    outcome = fields.Selection(
        [("sent", "Sent"), ("failed", "Failed"), ("bounced", "Bounced")],
        required=True,
        readonly=True,
        index=True,
        help="Bounced: the server took the mail, then the receiving side sent it back (a bounce report).",
    )
    category = fields.Selection(CATEGORY_SELECTION, readonly=True, index=True)
    bounce_class = fields.Selection(
        BOUNCE_CLASS_SELECTION,
        string="Bounce Type",
        readonly=True,
        index="btree_not_null",
        help="Hard: the address cannot receive mail (no such user or domain). Soft: it may later (mailbox full, "
        "temporarily unavailable). Blocked by policy: refused for what the mail or its sender is (spam or content "
        "block, SPF/DKIM/DMARC failure). Only hard bounces (and unclassified ones) count towards the blacklist.",
    )
    bounce_message_id = fields.Char(
        string="Bounce Message-Id", readonly=True, index="btree_not_null", help="The bounce report's own Message-Id."
    )
    smtp_code = fields.Integer(string="SMTP Code", readonly=True, aggregator=None)
    enhanced_status = fields.Char(readonly=True)
    reply = fields.Text(string="Server Reply", readonly=True)
    duration_ms = fields.Integer(string="Duration (ms)", readonly=True, aggregator="avg")
    summary = fields.Char(compute="_compute_summary")
    hint = fields.Char(string="What to Do", compute="_compute_hint")

    def _compute_hint(self):
        for log in self:
            if log.outcome == "sent":
                log.hint = False
            elif log.outcome == "bounced":
                log.hint = self._smtp_routing_bounce_hint(log.bounce_class)
            else:
                server = log.server_id.sudo()
                log.hint = self._smtp_routing_hint(log.category, server.smtp_host, server.smtp_port)

    @api.model
    def _smtp_routing_bounce_hint(self, bounce_class):
        return {
            "hard": self.env._("The address does not exist: correct it or remove it."),
            "soft": self.env._("The mailbox is full or unavailable for now: Odoo may try it again later."),
            "policy": self.env._(
                "The receiver blocked the mail or its sender: check SPF, DKIM and DMARC (Deliverability tab) and "
                "the content."
            ),
        }.get(bounce_class, self.env._("Read the receiving server's words in the reply."))

    @api.model
    def _smtp_routing_hint(self, category, host=None, port=None):
        """What to do about a failed attempt of ``category``, naming the host:port tried when it matters."""
        where = f"{host}:{port}" if host and port else (host or self.env._("the server"))
        connection = self.env._(
            "Nothing answered at %(where)s: check the host and the port, and that this Odoo may reach it (firewall).",
            where=where,
        )
        if port == 25:
            connection += " " + self.env._("Many providers block port 25: try 587 (STARTTLS) or 465 (SSL/TLS).")
        hints = {
            "auth": self.env._(
                "Check the user name and password (for Google and Microsoft: an app password, or "
                "OAuth; for SendGrid and Postmark: the API key)."
            ),
            "password_retired": self.env._(
                "The provider no longer accepts a password for SMTP (Microsoft turns Basic authentication off at "
                "the end of December 2026; Google ended password sign-in for Workspace on 1 May 2025): press "
                "Switch to OAuth on the server form, then Connect your account."
            ),
            "oauth_revoked": self.env._(
                "The provider no longer accepts this server's sign-in (consent revoked or expired, or the "
                "application's client secret expired): reconnect the account (Connect your account on the server "
                "form), or renew the client secret in Settings first."
            ),
            "connection_refused": connection,
            "dns": self.env._("The host name %(host)s does not resolve: check its spelling.", host=host or "?"),
            "timeout": self.env._(
                "%(where)s did not answer in time: check the host, the port and the firewall.", where=where
            ),
            "tls": self.env._(
                "Check the encryption: port 465 uses SSL/TLS, port 587 uses STARTTLS; "
                "the server certificate must be valid for the host name."
            ),
            "sender_rejected": self.env._(
                "The server refuses this From address: use an address this account may "
                "send from, or set the server's From email."
            ),
            "send_as_denied": self.env._(
                "The account may not send as this From address: grant it Send-As "
                "permission at your provider, or send from the account's own address."
            ),
            "recipient_rejected": self.env._("The server refused the recipient: check the address."),
            "too_large": self.env._("The message is larger than the server accepts."),
            "temporary": self.env._(
                "The server refused for now (rate limit, greylisting or busy): try again in a few minutes."
            ),
            "config": self.env._("Fix the configuration named in the reply."),
            "invalid_message": self.env._("The mail has no valid recipient or From address: correct it."),
        }
        return hints.get(category, self.env._("See the server's reply."))

    @api.depends("outcome", "category", "bounce_class", "smtp_code", "enhanced_status", "reply", "server_name")
    def _compute_summary(self):
        labels = dict(self._fields["category"]._description_selection(self.env))
        bounce_labels = dict(self._fields["bounce_class"]._description_selection(self.env))
        for log in self:
            if log.outcome == "sent":
                log.summary = self.env._("Sent via %(server)s", server=log.server_name or "?")
                continue
            if log.outcome == "bounced":
                label = bounce_labels.get(log.bounce_class, log.bounce_class or "")
            else:
                label = labels.get(log.category, log.category or "")
            outcome = Outcome(log.category or "", log.smtp_code or None, log.enhanced_status or None, log.reply or "")
            log.summary = describe(outcome, label)

    @api.model
    def _smtp_routing_words(self, outcome):
        """A classified failure in words, as the history row of the same failure shows it (its summary)."""
        labels = dict(self._fields["category"]._description_selection(self.env))
        return describe(outcome, labels.get(outcome.category, outcome.category))

    # -- recording (called while sending; buffered, written in one INSERT) -------------------
    @api.model
    def _smtp_routing_record(
        self,
        *,
        server_id=None,
        error=None,
        duration=0.0,
        stage="send",
        mail_id=False,
        message_id=None,
        subject=None,
        email_from=None,
        recipients=(),
        category=None,
        reply=None,
        outcome=None,
    ):
        """Buffer one attempt; rows are inserted together before the transaction commits.

        A failure is recorded from its :class:`Outcome` (``outcome``, or the one classified once for
        ``error``: ``tools.smtp_errors.classified``), the same value the queue and the test dialog word.

        Also flushed explicitly at the end of a ``mail.mail.send()`` run (see
        ``_smtp_routing_flush``) so a batch costs one INSERT, not one per mail.
        """
        recipients = list(recipients or ())
        vals = {
            "date": fields.Datetime.now(),
            "server_id": server_id or False,
            "mail_id": mail_id or False,
            "message_id": message_id or False,
            "subject": (str(subject)[:250] if subject else False),
            "email_from": (str(email_from)[:250] if email_from else False),
            "recipients": ", ".join(recipients)[:MAX_RECIPIENTS_TEXT] or False,
            "recipient_count": len(recipients),
            "source": self.env.context.get("smtp_routing_source") or "direct",
            "stage": stage,
            "duration_ms": int(duration * 1000),
            "outcome": "sent" if error is None and outcome is None and not category else "failed",
        }
        if category:  # refused by a rule before any SMTP attempt
            vals.update(category=category, reply=reply or False)
        if error is not None or outcome is not None:
            outcome = outcome or classified(error)
            vals.update(
                category=outcome.category,
                smtp_code=outcome.smtp_code or False,
                enhanced_status=outcome.enhanced_status or False,
                reply=outcome.text or False,
            )
        cr = self.env.cr
        buffer = cr.precommit.data.setdefault(BUFFER_KEY, [])
        if not buffer:
            cr.precommit.add(self._smtp_routing_flush)
        buffer.append(vals)

    @api.model
    def _smtp_routing_flush(self):
        """Insert the buffered attempts (one INSERT), dropping links to rows deleted meanwhile."""
        buffer = self.env.cr.precommit.data.pop(BUFFER_KEY, [])
        if not buffer:
            return self.browse()
        Server = self.env["ir.mail_server"].sudo().with_context(active_test=False)
        servers = Server.browse({vals["server_id"] for vals in buffer if vals["server_id"]}).exists()
        names = {server.id: server.name for server in servers}
        mail_ids = {vals["mail_id"] for vals in buffer if vals["mail_id"]}
        existing_mails = set(self.env["mail.mail"].sudo().browse(mail_ids).exists().ids) if mail_ids else set()
        for vals in buffer:
            vals["server_name"] = names.get(vals["server_id"], False)
            if vals["server_id"] not in names:
                vals["server_id"] = False
            if vals["mail_id"] not in existing_mails:
                vals["mail_id"] = False
        return self.sudo().create(buffer)

    # -- bounces (reported later, through the mail gateway) -----------------------------------
    @api.model
    def _smtp_routing_sent_attempt(self, message_id, recipient):
        """The latest successful attempt that carried ``message_id`` (to ``recipient`` when known)."""
        if not message_id:
            return self.browse()
        domain = [("message_id", "=", message_id), ("outcome", "=", "sent")]
        if recipient:
            attempt = self.search(domain + [("recipients", "ilike", recipient)], limit=1)
            if attempt:
                return attempt
        return self.search(domain, limit=1)

    @api.model
    def _smtp_routing_bounced_mail(self, message_id, recipient, legacy_mail_id=None):
        """The mail.mail that bounced, while it still exists: by Message-Id (and recipient), else by legacy id."""
        Mail = self.env["mail.mail"].sudo()
        mails = Mail.search([("message_id", "=", message_id)], limit=20) if message_id else Mail
        if len(mails) > 1 and recipient:
            mails = (
                mails.filtered(
                    lambda mail: (
                        recipient in (mail.email_to or "").lower()
                        or recipient in mail.recipient_ids.mapped("email_normalized")
                    )
                )
                or mails
            )
        if not mails and legacy_mail_id:
            mails = Mail.browse(legacy_mail_id).exists()
        return mails[:1]

    @api.model
    def _smtp_routing_bounce_summary(self, entry):
        """One line for people: the bounce's type, its status code and the receiving server's words."""
        label = dict(self._fields["bounce_class"]._description_selection(self.env)).get(entry.bounce_class, "")
        return self.env._(
            "%(type)s (%(status)s): %(words)s",
            type=label,
            status=entry.status or "-",
            words=entry.diagnostic or "-",
        )

    @api.model
    def _smtp_routing_record_bounces(self, report, message_dict):
        """One ``bounced`` row per recipient the report names, linked to the mail, its server and recipient.

        ``report`` is a :class:`..tools.bounces.BounceReport`; ``message_dict`` what Odoo's gateway parsed
        (its ``bounced_email``/``bounced_message`` fill gaps). A report with nothing readable still gets a row,
        so no bounce goes unseen. The same bounce processed twice is recorded once.
        """
        bounce_id = message_dict.get("message_id") or False
        bounced_message = message_dict.get("bounced_message")
        message_id = report.original_message_id or (bounced_message.message_id if bounced_message else False)
        odoo_email = message_dict.get("bounced_email") or False
        entries = list(report.recipients) or [None]
        values = []
        for entry in entries:
            recipient = email_normalize((entry.recipient if entry else None) or "") or (
                odoo_email if len(entries) == 1 else False
            )
            if bounce_id and self.search_count(
                [("bounce_message_id", "=", bounce_id), ("recipients", "=", recipient or False)], limit=1
            ):
                continue
            attempt = self._smtp_routing_sent_attempt(message_id, recipient)
            mail = attempt.mail_id or self._smtp_routing_bounced_mail(message_id, recipient, report.legacy_mail_id)
            server = attempt.server_id or mail.smtp_routing_server_id
            reply = (entry.diagnostic if entry else "") or message_dict.get("subject") or ""
            values.append(
                {
                    "date": fields.Datetime.now(),
                    "server_id": server.id or False,
                    "server_name": server.name or attempt.server_name or False,
                    "mail_id": mail.id or False,
                    "message_id": message_id or (mail.message_id if mail else False) or False,
                    "subject": (attempt.subject or report.original_subject or (mail.subject if mail else "") or "")[
                        :250
                    ]
                    or False,
                    "email_from": (attempt.email_from or report.original_from or "")[:250] or False,
                    "recipients": recipient or False,
                    "recipient_count": 1 if recipient else 0,
                    "source": "bounce",
                    "stage": "bounce",
                    "outcome": "bounced",
                    "bounce_class": entry.bounce_class if entry else "other",
                    "smtp_code": (entry.smtp_code if entry else None) or False,
                    "enhanced_status": (entry.status if entry else None) or False,
                    "reply": reply[:2000] or False,
                    "bounce_message_id": bounce_id,
                }
            )
        return self.sudo().create(values) if values else self.browse()

    # -- housekeeping ---------------------------------------------------------------------
    # -- counters and health of servers (ir.mail_server's computed fields) -------------------
    @api.model
    def _smtp_routing_outcome_counts(self, servers, since):
        """{(server id, outcome): attempts since ``since``} for ``servers``, from the delivery history."""
        return {
            (server.id, outcome): count
            for server, outcome, count in self.sudo()._read_group(
                [("server_id", "in", servers.ids), ("date", ">=", since)], ["server_id", "outcome"], ["__count"]
            )
        }

    @api.model
    def _smtp_routing_history(self, servers):
        """Compute ``servers``' last-24-hours counters and last error (ir.mail_server's fields)."""
        counts = self._smtp_routing_outcome_counts(servers, fields.Datetime.now() - timedelta(hours=24))
        Log = self.sudo()
        for server in servers:
            server.smtp_routing_sent_24h = counts.get((server.id, "sent"), 0)
            server.smtp_routing_failed_24h = counts.get((server.id, "failed"), 0)
            server.smtp_routing_bounced_24h = counts.get((server.id, "bounced"), 0)
            last = Log
            if server.id:
                last = Log.search([("server_id", "=", server.id), ("outcome", "=", "failed")], limit=1)
            server.smtp_routing_last_error = last.summary if last else False
            server.smtp_routing_last_error_date = last.date if last else False

    @api.model
    def _smtp_routing_today_start(self):
        """Midnight in the user's time zone, as a naive UTC datetime (what "today" means to the reader)."""
        try:
            tz = pytz.timezone(self.env.context.get("tz") or self.env.user.tz or "UTC")
        except pytz.UnknownTimeZoneError:
            tz = pytz.utc
        today = datetime.now(pytz.utc).astimezone(tz).date()
        midnight = tz.localize(datetime.combine(today, datetime.min.time()))
        return midnight.astimezone(pytz.utc).replace(tzinfo=None)

    @api.model
    def _smtp_routing_today(self, servers):
        """Compute ``servers``' counters for today, in the reader's time zone (ir.mail_server's fields)."""
        counts = self._smtp_routing_outcome_counts(servers, self._smtp_routing_today_start())
        for server in servers:
            server.smtp_routing_sent_today = counts.get((server.id, "sent"), 0)
            server.smtp_routing_failed_today = counts.get((server.id, "failed"), 0)

    @api.model
    def _smtp_routing_recent_failures(self, servers):
        """{server id: (failing since, latest category, failed attempts in a row)} for the ``servers`` whose latest
        server-level attempt failed, and the set of servers with a successful delivery on record.

        From the delivery history (test emails included); refusals by a rule and failures that concern one
        mail only (a refused recipient, a message too large) say nothing about the server and are left out.
        """
        if not servers.ids:
            return {}, set()
        Log = self.sudo()
        Log.flush_model()
        self.env.cr.execute(
            """SELECT server_id,
                      MAX(date) FILTER (WHERE outcome = 'sent'),
                      MAX(date) FILTER (WHERE outcome = 'failed')
                 FROM smtp_routing_delivery_log
                WHERE server_id IN %s AND stage != 'policy' AND outcome IN ('sent', 'failed')
                  AND (outcome = 'sent' OR category IS NULL OR category NOT IN %s)
             GROUP BY server_id""",
            [tuple(servers.ids), MAIL_LEVEL_CATEGORIES],
        )
        failing, delivered = {}, set()
        for server_id, last_sent, last_failed in self.env.cr.fetchall():
            if last_sent:
                delivered.add(server_id)
            if not last_failed or (last_sent and last_sent >= last_failed):
                continue
            streak = Log.search(
                [
                    ("server_id", "=", server_id),
                    ("stage", "!=", "policy"),
                    ("outcome", "=", "failed"),
                    ("category", "not in", MAIL_LEVEL_CATEGORIES),
                ]
                + ([("date", ">", last_sent)] if last_sent else []),
                order="date desc, id desc",
            )
            failing[server_id] = (streak[-1].date, streak[0].category or "other", len(streak))
        return failing, delivered

    @api.model
    def _smtp_routing_bulk_volumes(self, server_ids):
        """{receiver: mails sent in the last 24 hours} through these servers (Gmail, Yahoo, Outlook.com)."""
        if not server_ids:
            return dict.fromkeys(readiness.RECEIVERS, 0)
        self.flush_model(["server_id", "outcome", "date", "recipients"])
        self.env.cr.execute(
            "SELECT recipients FROM smtp_routing_delivery_log WHERE server_id = ANY(%s) AND outcome = 'sent' "
            "AND date >= %s AND recipients IS NOT NULL",
            [list(server_ids), fields.Datetime.now() - timedelta(hours=24)],
        )
        return readiness.daily_volume(row[0] for row in self.env.cr.fetchall())

    @api.model
    def _smtp_routing_bulk_volume_text(self, counts):
        """The volumes against the bulk threshold, as the server form shows them."""
        threshold = f"{readiness.BULK_THRESHOLD:,}"
        parts = []
        for name, label in readiness.RECEIVERS.items():
            count = f"{counts[name]:,}"
            parts.append(
                self.env._("%(receiver)s %(count)s / %(threshold)s", receiver=label, count=count, threshold=threshold)
            )
        return " · ".join(parts)

    @api.autovacuum
    def _gc_delivery_log(self):
        """Remove attempts older than ``smtp_routing.log_retention_days`` (90; 0 or less keeps all)."""
        days = params.integer(self.env, RETENTION_PARAM, DEFAULT_RETENTION_DAYS)
        if days <= 0:
            return 0
        cutoff = fields.Datetime.now() - timedelta(days=days)
        self.env.cr.execute("DELETE FROM smtp_routing_delivery_log WHERE date < %s", [cutoff])
        return self.env.cr.rowcount
