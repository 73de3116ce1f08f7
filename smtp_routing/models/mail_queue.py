# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""One run of the outgoing queue: claim, plan, reserve, send, fail over, defer, record.

Used by ``mail.mail.send()`` for every path (queue cron, send now, composer,
post-commit sends). Compared with stock Odoo it:

- claims the mails it sends (row locks with SKIP LOCKED, then a lease committed
  with them), so two workers never send the same mail; a worker that dies
  leaves leased mails that become due again when the lease ends;
- asks each candidate server for room under its limits (one short committed
  transaction per server and batch), sends what fits and gives the rest to
  the next candidate, or defers it to the next free slot;
- fails over: connection, login, TLS, time-out and temporary (4xx) failures
  cool the server down and hand the mail to the next candidate in the same run;
  permanent refusals (5xx) fail the mail, never retried elsewhere;
- writes states in bulk and commits every ``COMMIT_EVERY`` mails instead of
  after every mail.
"""

import logging
import smtplib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg2
from psycopg2 import errors as pg_errors

from odoo import SUPERUSER_ID, fields, modules, tools
from odoo.exceptions import AccessError

from odoo.addons.base.models.ir_mail_server import MailDeliveryException

from ..tools import limits as limits_tool
from ..tools import routing
from ..tools.addresses import split_addresses
from ..tools.smtp_errors import Outcome as SmtpOutcome
from ..tools.smtp_errors import classify
from . import params
from .smtp_routing_send_as import Judge

_logger = logging.getLogger(__name__)

# Odoo's closed failure_type selections, for our categories (the reason keeps the detail).
FAILURE_TYPES = {
    "recipient_rejected": "mail_email_invalid",
    "sender_rejected": "mail_from_invalid",
    "send_as_denied": "mail_from_invalid",
    "invalid_message": "unknown",
    "too_large": "unknown",  # Odoo has no "too large" failure type; the reason says it
    "other": "unknown",
}
LEASE_SECONDS = 600  # default of smtp_routing.lease_seconds
COMMIT_EVERY = 50
CLAIM_RETRIES = 3


@dataclass
class Group:
    """Mails that share a sending configuration: same envelope sender and candidate servers."""

    alias_domain_id: int | bool
    smtp_from: str
    candidates: list  # ir.mail_server records in order (False: Odoo's command-line server)
    mail_ids: list
    smtp_froms: dict = field(default_factory=dict)  # server id -> envelope sender through that server
    explanation: str = ""

    def smtp_from_for(self, server):
        return self.smtp_froms.get(server.id if server else False, self.smtp_from)


@dataclass
class Outcome:
    sent: dict = field(default_factory=dict)  # mail id -> (server id, message id, success pids, failure type)
    # mail id -> (server id, reason, failure type, success pids, failure type kept on the mail itself)
    failed: dict = field(default_factory=dict)


class _RetryElsewhere(Exception):
    """Nothing of this mail left; the server is the problem, another server may do."""

    def __init__(self, error, outcome):
        super().__init__(str(error))
        self.error = error
        self.outcome = outcome


class QueueRun:
    def __init__(self, mails, auto_commit=False, raise_exception=False, post_send_callback=None):
        self.env = mails.env
        self.Mail = mails.env["mail.mail"]
        self.mails = mails
        self.auto_commit = auto_commit
        self.raise_exception = raise_exception
        self.post_send_callback = post_send_callback
        self.State = self.env["smtp_routing.server.state"].sudo()
        self.cooling = {}  # server id -> until: health known to this run (fresher than our snapshot)
        self.failing = set()  # servers whose failure counter must be reset by a success
        self.explanations = {}  # mail id -> how it was routed
        self.judge = Judge(self.env)  # Send-As: facts read once per acting user for the run
        self.send_as = {}  # mail id -> Send-As verdict (a grant may name the servers that may carry it)
        self.outcome = Outcome()
        self.first_error = None

    # -- entry point ------------------------------------------------------------------------------
    def execute(self):
        mails = self._claim()
        if not mails:
            return True
        self.cooling, self.failing = self.State._smtp_routing_health(self._all_servers())
        for group in self._plan(mails):
            self._run_group(group)
        self._flush()
        if self.raise_exception and self.first_error:
            raise MailDeliveryException(self.env._("Mail Delivery Failed"), self.first_error)
        return True

    # -- claiming -----------------------------------------------------------------------------------
    def _claim(self):
        ids = tuple(self.mails.ids)
        if not ids:
            return self.Mail
        self.Mail.flush_model(["state", "smtp_routing_lease_until", "scheduled_date"])
        for attempt in range(CLAIM_RETRIES):
            if self.auto_commit:
                self.env.cr.commit()  # a fresh snapshot: leases committed by others are visible
            now = fields.Datetime.now()
            try:
                self.env.cr.execute(
                    "SELECT id FROM mail_mail WHERE id IN %s AND state = 'outgoing' "
                    "AND (smtp_routing_lease_until IS NULL OR smtp_routing_lease_until < %s) "
                    "ORDER BY id FOR UPDATE SKIP LOCKED",
                    [ids, now],
                )
                claimed = [row[0] for row in self.env.cr.fetchall()]
                if claimed:
                    self.env.cr.execute(
                        "UPDATE mail_mail SET smtp_routing_lease_until = %s WHERE id IN %s",
                        [now + timedelta(seconds=self._lease_seconds()), tuple(claimed)],
                    )
                if self.auto_commit:
                    self.env.cr.commit()
                break
            except pg_errors.SerializationFailure:
                if not self.auto_commit or attempt == CLAIM_RETRIES - 1:
                    raise
                self.env.cr.rollback()
        self.mails.invalidate_recordset(["state", "smtp_routing_lease_until"])
        return self.Mail.browse(claimed)

    def _lease_seconds(self):
        return max(params.integer(self.env, "smtp_routing.lease_seconds", LEASE_SECONDS), 1)

    # -- planning -------------------------------------------------------------------------------------
    def _all_servers(self):
        return self.env["ir.mail_server"].sudo().search([], order="sequence, id")

    def _plan(self, mails):
        """Groups of mails sharing candidates: the routes' decision, or Odoo's choice plus failover."""
        Route = self.env["smtp_routing.route"].sudo()
        routes = Route.search([])
        servers = self._all_servers()
        route_groups, stock_ids = {}, []
        if routes:
            route_specs = [route._smtp_routing_spec() for route in routes]
            server_specs = {server.id: server._smtp_routing_spec() for server in servers}
            names = {server.id: server.name for server in servers}
        own_ids = defaultdict(list)
        for mail in mails:
            denied = self._access_problem(mail)
            if denied:
                self._fail_access(mail, denied)
                continue
            problem = self._send_as_problem(mail)
            if problem:
                self._fail_send_as(mail, problem)
                continue
            if not routes:
                own = self._own_server(mail)
                if own:
                    own_ids[own].append(mail.id)
                else:
                    stock_ids.append(mail.id)
                continue
            decision = routing.decide(
                mail._smtp_routing_facts(),
                route_specs,
                server_specs,
                self.env["ir.mail_server"]._match_from_filter,
                cooling=self.cooling,
            )
            if decision.route_id is None:
                stock_ids.append(mail.id)
                continue
            emails_from = tools.mail.email_split_and_format(mail.email_from)
            email_from = emails_from[0] if emails_from else mail.email_from
            alias_domain_id = mail.record_alias_domain_id.id
            key = (alias_domain_id, email_from, tuple(decision.server_ids), decision.route_reason)
            if key not in route_groups:
                route_groups[key] = self._route_group(alias_domain_id, email_from, decision, names)
            route_groups[key].mail_ids.append(mail.id)
        groups = list(route_groups.values())
        if stock_ids:
            groups += self._stock_groups(self.Mail.browse(stock_ids), servers)
        for own, mail_ids in own_ids.items():
            for group in self._stock_groups(self.Mail.browse(mail_ids), servers):
                group.smtp_froms[own.id] = self._smtp_from_through(group.alias_domain_id, group.smtp_from, own)
                group.candidates = [own] + [server for server in group.candidates if server != own]
                group.explanation = self.env._(
                    "Personal mail: the author's own server first (preferences). %(rest)s", rest=group.explanation
                )
                groups.append(group)
        for group in groups:
            self._apply_send_as_restriction(group)
        for group in groups:
            for mail_id in group.mail_ids:
                self.explanations[mail_id] = group.explanation
        return groups

    def _smtp_from_through(self, alias_domain_id, email_from, server):
        """The envelope sender Odoo would use for ``email_from`` through ``server`` (From filter rules)."""
        return self._sender_env(alias_domain_id).sudo()._find_mail_server(email_from, mail_servers=server)[1]

    def _route_group(self, alias_domain_id, email_from, decision, names):
        candidates = self.env["ir.mail_server"].sudo().browse(decision.server_ids)
        smtp_froms = {server.id: self._smtp_from_through(alias_domain_id, email_from, server) for server in candidates}
        return Group(alias_domain_id, email_from, list(candidates), [], smtp_froms, routing.explain(decision, names))

    def _stock_groups(self, mails, servers):
        Server = self.env["ir.mail_server"].sudo()
        groups = []
        for server_id, alias_domain_id, smtp_from, batch_ids in mails._split_by_mail_configuration():
            if not server_id:
                candidates = [False]
            else:
                batch = self.Mail.browse(batch_ids)
                primary = Server.browse(server_id)
                # a user's personal server carries their own mail only: never a fallback, and the primary
                # only when every mail of the batch was sent by its owner (checked: see _send_as_problem)
                if primary.smtp_routing_owner_id and any(
                    mail._smtp_routing_acting_user() != primary.smtp_routing_owner_id for mail in batch
                ):
                    primary = Server
                fallbacks = [
                    server
                    for server in Server._smtp_routing_order(servers - primary)
                    if not server.smtp_routing_owner_id and Server._match_from_filter(smtp_from, server.from_filter)
                ]
                # a company's servers never carry another company's mail
                companies = {mail._smtp_routing_company().id for mail in batch}
                candidates = [
                    server
                    for server in [*primary, *fallbacks]
                    if not server.company_id or server.company_id.id in companies
                ] or [False]
            names = ", ".join(server.name for server in candidates if server) or self.env._("Odoo's command line")
            explanation = self.env._(
                "No route: Odoo's choice (priority, default server and From filter), then the servers that may "
                "send as the same sender. Candidates: %(servers)s",
                servers=names,
            )
            groups.append(Group(alias_domain_id, smtp_from, candidates, list(batch_ids), {}, explanation))
        return groups

    def _own_server(self, mail):
        """The sender's own server (preferences), for their personal mail."""
        return mail._smtp_routing_own_server().sudo() or None

    def _apply_send_as_restriction(self, group):
        """A Send-As grant limited to some servers: only those may carry the mails of this group."""
        restricted = {}
        for mail_id in group.mail_ids:
            verdict = self.send_as.get(mail_id)
            if verdict is not None and verdict.code == "granted_through":
                restricted[mail_id] = self.env["ir.mail_server"].sudo().browse(sorted(verdict.server_ids))
        if not restricted:
            return
        allowed = next(iter(restricted.values()))
        kept = [server for server in group.candidates if server in allowed] or list(allowed.sudo())
        for server in kept:
            if server.id not in group.smtp_froms:
                group.smtp_froms[server.id] = self._smtp_from_through(group.alias_domain_id, group.smtp_from, server)
        group.candidates = kept
        group.explanation += "\n" + self.env._(
            "Send-As permission limited to: %(servers)s", servers=", ".join(s.name for s in kept)
        )

    def _send_as_problem(self, mail):
        """None, or the refusal: the From, and any server, route or company the sender forced, are judged
        for the user who created the message (tools.send_as), never for the author it names."""
        user = mail._smtp_routing_acting_user()
        if self.judge.exempt(user):
            return None  # code running as the superuser, portal and public users: Odoo's behaviour
        request = mail._smtp_routing_send_as_request(self.judge)
        verdict = self.judge.check(user, request)
        self.send_as[mail.id] = verdict
        return None if verdict.allowed else self.judge.refusal(user, verdict, request)

    def _access_problem(self, mail):
        """As stock Odoo: a user who calls send() on a mail must be allowed to update it and its message
        (sending writes the Message-Id on the message). Code running as the superuser or in sudo may."""
        if self.env.su or self.env.uid == SUPERUSER_ID:
            return None
        try:
            mail.check_access("write")
            mail.mail_message_id.check_access("write")
        except AccessError as error:
            return tools.exception_to_unicode(error)
        return None

    def _fail_access(self, mail, reason):
        self.outcome.failed[mail.id] = (False, reason, "unknown", [], "unknown")
        self.first_error = self.first_error or reason

    def refuse(self, problem):
        """Fail the given mails as refused by the Send-As check (message_post judged them before they left)."""
        mails = self._claim()
        for mail in mails:
            self._fail_send_as(mail, problem)
        self._flush()

    def _fail_send_as(self, mail, problem):
        reason = self._reason(SmtpOutcome("send_as_denied", text=problem))
        self.outcome.failed[mail.id] = (False, reason, "mail_from_invalid", [], "mail_from_invalid")
        self.explanations[mail.id] = self.env._("Refused before sending: Send-As denied.")
        self.first_error = self.first_error or reason
        self.env["smtp_routing.delivery.log"]._smtp_routing_record(
            stage="policy",
            mail_id=mail.id,
            message_id=mail.message_id,
            subject=mail.subject,
            email_from=mail.email_from,
            category="send_as_denied",
            reply=problem,
        )

    # -- one group -------------------------------------------------------------------------------------
    def _run_group(self, group):
        pending = list(group.mail_ids)
        blocked = []  # (until, reason) of candidates that could not take everything
        now = fields.Datetime.now()
        for server in group.candidates:
            if not pending:
                break
            if server and self.cooling.get(server.id, now) > now:
                blocked.append((self.cooling[server.id], self._cooling_reason(server)))
                continue
            connected, session = self._connect(server, group)
            if not connected:
                if server:
                    blocked.append((self.cooling.get(server.id, now), self._cooling_reason(server)))
                    continue
                return  # Odoo's command-line server failed: the mails were failed as stock Odoo does
            try:
                allowed, overflow = self._reserve(server, pending, blocked)
                retry = self._send_batch(server, session, group, allowed) if allowed else []
            finally:
                if session is not None:
                    session.quit()
            if server and allowed:
                self.State._smtp_routing_finish_batch(server)
            if retry and server:
                blocked.append((self.cooling.get(server.id, now), self._cooling_reason(server)))
            pending = retry + overflow
        if pending:
            self._defer(pending, group, blocked)

    def _cooling_reason(self, server):
        return self.env._("%(server)s is cooling down after a failure", server=server.name)

    def _connect(self, server, group):
        """(True, session) or (False, None). Under Odoo's test mode the session is None: send_email pretends."""
        IrMailServer = self._sender_env(group.alias_domain_id)
        try:
            session = IrMailServer.connect(
                mail_server_id=server.id if server else None, smtp_from=group.smtp_from_for(server)
            )
        except Exception as error:  # noqa: BLE001 - classified, logged by connect(), then failed over
            outcome = classify(error)
            self.first_error = self.first_error or str(error)
            if server:
                self.cooling[server.id] = self.State._smtp_routing_failed(server, outcome.category)
                self.failing.add(server.id)
            else:
                self._fail_all(group.mail_ids, server, self._reason(outcome), "mail_smtp")
            return False, None
        return True, session

    def _reserve(self, server, pending, blocked):
        if not server or not server._smtp_routing_limits().any:
            return pending, []
        mails = self.Mail.browse(pending)
        items = [self._item(mail) for mail in mails]
        reservation = self.State._smtp_routing_reserve(server, items)
        if reservation.next_slot:
            blocked.append(
                (
                    reservation.next_slot,
                    self.env._(
                        "%(server)s reached its %(limit)s limit",
                        server=server.name,
                        limit=server._smtp_routing_limit_names().get(reservation.blocked_by, reservation.blocked_by),
                    ),
                )
            )
        return pending[: reservation.allowed], pending[reservation.allowed :]

    @staticmethod
    def _item(mail):
        partners = len(mail.recipient_ids)
        plain = len(split_addresses(mail.email_to or "")) + len(split_addresses(mail.email_cc or ""))
        messages = partners + (1 if plain or not partners else 0)
        size = len(mail.body_html or "") + sum(mail.attachment_ids.mapped("file_size"))
        return limits_tool.Item(recipients=max(partners + plain, 1), size=size, messages=messages)

    # -- sending ------------------------------------------------------------------------------------------
    def _sender_env(self, alias_domain_id, email=None, validated_to=None):
        IrMailServer = self.env["ir.mail_server"]
        context = {}
        if validated_to is not None:
            context["send_validated_to"] = validated_to
        if alias_domain_id:
            alias_domain = self.env["mail.alias.domain"].sudo().browse(alias_domain_id)
            context["domain_notifications_email"] = alias_domain.default_from_email
            context["domain_bounce_address"] = (
                email and email["headers"].get("Return-Path")
            ) or alias_domain.bounce_email
        return IrMailServer.with_context(**context) if context else IrMailServer

    def _send_batch(self, server, session, group, mail_ids):
        """Send through one open session; returns the mails to try on the next server.

        Mails go in chunks of ``COMMIT_EVERY``, each browsed on its own: a commit clears
        the ORM cache, and a chunk's prefetch set must not be the whole batch (re-reading
        mail.mail's inherited fields for every mail of the batch after each commit).
        """
        position = 0
        for chunk_ids in tools.split_every(COMMIT_EVERY, mail_ids):
            retry_from = self._send_chunk(server, session, group, list(chunk_ids))
            if retry_from is not None:
                return list(mail_ids[position + retry_from :])
            position += len(chunk_ids)
            if self.auto_commit:
                self._flush()
        if server and server.id in self.failing:
            self.State._smtp_routing_succeeded(server)
            self.failing.discard(server.id)
        return []

    def _send_chunk(self, server, session, group, chunk_ids):
        """Send one chunk; returns the index from which the rest must go elsewhere, or None."""
        mails = self.Mail.browse(chunk_ids)
        with_unfollow = mails.filtered(lambda m: m.body_html and "/mail/unfollow" in m.body_html)
        follower_status = (
            self.env["mail.followers"]._get_mail_recipients_follower_status(with_unfollow.ids)
            if with_unfollow
            else None
        )
        server_id = server.id if server else False
        for index, mail in enumerate(mails):
            try:
                message_id, success_pids, failure_type = self._send_one(mail, server, session, group, follower_status)
            except _RetryElsewhere as retry:
                self.first_error = self.first_error or str(retry.error)
                if server:
                    self.cooling[server.id] = self.State._smtp_routing_failed(server, retry.outcome.category)
                    self.failing.add(server.id)
                return index
            except (MemoryError, psycopg2.Error):
                raise
            except Exception as error:  # noqa: BLE001 - a permanent failure of this mail only
                self._record_failure(mail, server, error)
            else:
                if message_id:
                    self.outcome.sent[mail.id] = (server_id, message_id, success_pids, failure_type)
                else:  # no valid recipient at all: as stock Odoo, the type goes to notifications only
                    reason = self.env._(
                        "Error without exception. Probably due to sending an email without computed recipients."
                    )
                    self.outcome.failed[mail.id] = (server_id, reason, failure_type, success_pids, False)
        return None

    def _lock_notifications(self, mail):
        """Lock the mail's pending notifications before sending, as stock Odoo does: a bounce
        processed meanwhile waits for this transaction instead of being overwritten by it."""
        if not mail.is_notification:
            return
        self.env.cr.execute(
            "SELECT id FROM mail_notification WHERE mail_mail_id = %s AND notification_type = 'email' "
            "AND notification_status NOT IN ('sent', 'canceled') FOR UPDATE",
            [mail.id],
        )

    def _send_one(self, mail, server, session, group, follower_status):
        IrMailServer = self.env["ir.mail_server"]
        self._lock_notifications(mail)
        emails_from = tools.mail.email_split_and_format(mail.email_from)
        email_from = emails_from[0] if emails_from else mail.email_from
        email_list = mail._prepare_outgoing_list(
            mail_server=server or mail.mail_server_id, recipients_follower_status=follower_status
        )
        message_id, success_pids, failure_type = None, [], None
        for email in email_list:
            validated_to = email.pop("email_to_normalized", [])
            sender = self._sender_env(group.alias_domain_id, email, validated_to)
            msg = sender.build_email(
                email_from=email_from,
                email_to=email["email_to"],
                subject=email["subject"],
                body=email["body"],
                body_alternative=email["body_alternative"],
                email_cc=email["email_cc"],
                reply_to=email["reply_to"],
                attachments=email["attachments"],
                message_id=email["message_id"],
                references=email["references"],
                object_id=email["object_id"],
                subtype="html",
                subtype_alternative="plain",
                headers=email["headers"],
            )
            partner_id = email.pop("partner_id", None)
            try:
                message_id = sender.send_email(msg, mail_server_id=mail.mail_server_id.id, smtp_session=session)
            except AssertionError as error:
                if str(error) != IrMailServer.NO_VALID_RECIPIENT:
                    raise
                failure_type = (
                    "mail_email_missing"
                    if not email.get("email_to") and failure_type != "mail_email_invalid"
                    else "mail_email_invalid"
                )
                continue
            except (MemoryError, psycopg2.Error):
                raise
            except Exception as error:
                outcome = classify(error)
                nothing_sent_yet = message_id is None
                session_gone = isinstance(error, smtplib.SMTPServerDisconnected) or isinstance(
                    getattr(error, "__context__", None), smtplib.SMTPServerDisconnected
                )
                if nothing_sent_yet and (outcome.failover or session_gone):
                    raise _RetryElsewhere(error, outcome) from error
                raise
            if partner_id:
                success_pids.append(partner_id)
        return message_id, success_pids, failure_type

    # -- results ---------------------------------------------------------------------------------------------
    def _reason(self, outcome):
        labels = dict(self.env["smtp_routing.delivery.log"]._fields["category"]._description_selection(self.env))
        code = " ".join(str(part) for part in (outcome.smtp_code, outcome.enhanced_status) if part)
        return " - ".join(part for part in (labels.get(outcome.category, outcome.category), code, outcome.text) if part)

    def _record_failure(self, mail, server, error):
        IrMailServer = self.env["ir.mail_server"]
        failure_type = "mail_smtp"
        reason = None
        if isinstance(error, AssertionError) and error.args:
            code = error.args[0]
            reason = str(error.args[1]) if len(error.args) > 1 and code == IrMailServer.NO_VALID_FROM else code
            if code == IrMailServer.NO_VALID_FROM:
                failure_type = "mail_from_invalid"
            elif code in (IrMailServer.NO_FOUND_FROM, IrMailServer.NO_FOUND_SMTP_FROM):
                failure_type = "mail_from_missing"
            else:
                failure_type = "unknown"
        if reason is None:
            outcome = classify(error)
            if outcome.category == "other" and not outcome.smtp_code:
                reason, failure_type = tools.exception_to_unicode(error), "unknown"  # as stock Odoo words it
            else:
                reason, failure_type = self._reason(outcome), FAILURE_TYPES.get(outcome.category, "mail_smtp")
        self.first_error = self.first_error or reason
        _logger.info("smtp_routing: mail %s failed: %s", mail.id, reason)
        self.outcome.failed[mail.id] = (server.id if server else False, reason, failure_type, [], failure_type)

    def _fail_all(self, mail_ids, server, reason, failure_type):
        for mail_id in mail_ids:
            self.outcome.failed[mail_id] = (server.id if server else False, reason, failure_type, [], failure_type)
        self.first_error = self.first_error or reason

    def _flush(self):
        """Write the states gathered since the last flush, post-process, and commit (queue mode)."""
        sent, failed = self.outcome.sent, self.outcome.failed
        self.outcome = Outcome()
        Mail = self.Mail
        done_ids = []
        names = {server.id: server.name for server in self._all_servers()}
        by_server = defaultdict(list)
        for mail_id, (server_id, _message_id, _pids, _ftype) in sent.items():
            by_server[(server_id, self.explanations.get(mail_id, ""))].append(mail_id)
        for (server_id, explanation), mail_ids in by_server.items():
            through = self.env._("Sent through %(server)s.", server=names.get(server_id, "-"))
            Mail.browse(mail_ids).write(
                {
                    "state": "sent",
                    "failure_reason": False,
                    "smtp_routing_lease_until": False,
                    "smtp_routing_server_id": server_id,
                    "smtp_routing_deferred_reason": False,
                    "smtp_routing_explanation": f"{explanation}\n{through}".strip(),
                }
            )
            done_ids += mail_ids
        for mail_id, (_server_id, message_id, _pids, _ftype) in sent.items():
            mail = Mail.browse(mail_id)
            if message_id and mail.message_id != message_id:
                mail.message_id = message_id
        by_failure_type = defaultdict(lambda: (Mail, []))
        for mail_id, (_server_id, _message_id, pids, failure_type) in sent.items():
            mails, all_pids = by_failure_type[failure_type]
            by_failure_type[failure_type] = (mails | Mail.browse(mail_id), all_pids + pids)
        for failure_type, (mails, pids) in by_failure_type.items():
            mails._postprocess_sent_message(success_pids=pids, failure_type=failure_type)
        for mail_id, (server_id, reason, failure_type, pids, mail_failure_type) in failed.items():
            mail = Mail.browse(mail_id)
            mail.write(
                {
                    "state": "exception",
                    "failure_reason": reason,
                    "failure_type": mail_failure_type,
                    "smtp_routing_lease_until": False,
                    "smtp_routing_server_id": server_id,
                    "smtp_routing_explanation": self.explanations.get(mail_id, False),
                }
            )
            notification_reason = reason if mail_failure_type else False
            mail._postprocess_sent_message(
                success_pids=pids, failure_reason=notification_reason, failure_type=failure_type
            )
            done_ids.append(mail_id)
        self.env["smtp_routing.delivery.log"]._smtp_routing_flush()
        if self.auto_commit:
            if self.post_send_callback and done_ids:
                self.post_send_callback(done_ids)
            self.env.cr.commit()

    def _defer(self, mail_ids, group, blocked):
        now = fields.Datetime.now()
        if blocked:
            slot, reason = min(blocked, key=lambda entry: entry[0])
            slot = max(slot, now + timedelta(seconds=1))
        else:
            slot, reason = now + timedelta(seconds=60), self.env._("no server could take it")
        planned = next((server for server in group.candidates if server), None)
        deferred = self.env._(
            "Deferred to %(slot)s UTC: %(reason)s", slot=fields.Datetime.to_string(slot), reason=reason
        )
        self.Mail.browse(mail_ids).write(
            {
                "scheduled_date": slot,
                "smtp_routing_lease_until": False,
                "smtp_routing_server_id": planned.id if planned else False,
                "smtp_routing_deferred_reason": deferred,
                "smtp_routing_explanation": f"{group.explanation}\n{deferred}".strip(),
            }
        )
        cron = self.env.ref("mail.ir_cron_mail_scheduler_action", raise_if_not_found=False)
        if cron:
            cron.sudo()._trigger(at=slot)
        if not modules.module.current_test:
            _logger.info("smtp_routing: deferred %s mail(s) to %s: %s", len(mail_ids), slot, reason)
