# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""One run of the outgoing queue: claim, plan, reserve, connect, send, classify once, record.

Used by ``mail.mail.send()`` for every path (queue cron, send now, composer,
post-commit sends). It mirrors Odoo 18's ``odoo/addons/mail/models/mail_mail.py``:

- ``MailMail.send``: mails batched by ``_split_by_mail_configuration``, one SMTP
  session per batch, a failed connection failing the batch (here: fail-over);
- ``MailMail._send``: the per-mail loop (lock the notifications,
  ``_prepare_outgoing_list``, ``build_email``, ``send_email`` on the batch's
  session, Odoo's failure types, ``_postprocess_sent_message``);
- ``MailMail._split_by_mail_configuration``, whose batches (server, alias
  domain, envelope sender) the run takes as they are when no route applies;
- ``MailMail.process_email_queue``, which calls ``send(auto_commit=True)`` on the
  due mails and is what the lease and the cron wake-ups work with.

``ODOO_MIRRORS`` below keeps the sha256 of each of these functions' source; a
framework-free test (``tests/test_odoo_mirror.py``) fails when Odoo's source
differs, so an Odoo upgrade forces a review of this module.

Compared with stock Odoo it:

- claims the mails it sends (row locks with SKIP LOCKED, then a lease committed
  with them, naming the claiming PostgreSQL backend), so two workers never send
  the same mail. A live worker extends its lease as it goes and checks it before
  each send; a claim whose backend is gone (the worker died) is free at once,
  and the queue cron is woken when a claim ends;
- asks each candidate server for room under its limits (one short committed
  transaction per server and chunk), sends what fits and gives the rest to
  the next candidate, or defers it to the next free slot; what was reserved and
  not sent is given back. A mail larger than a whole window is split by
  recipient message across windows, or refused at once when it cannot be split;
- keeps results per recipient message (``smtp_routing_progress``): a temporary
  refusal of a recipient (4xx at RCPT) defers that recipient only, with back-off
  up to a maximum age; a permanent one (5xx) fails that recipient only, on its
  notification. Neither is a server failure;
- fails over: connection, login, TLS, time-out and temporary (4xx) failures of
  the server cool it down and hand the mail to the next candidate in the same
  run (recipients already served are not sent again); configuration errors fail
  the mail with what to fix; permanent refusals (5xx) fail the mail;
- writes states in bulk and commits every ``COMMIT_EVERY`` mails instead of
  after every mail; a failure while post-processing one mail never undoes the
  others.
"""

import dataclasses
import logging
import smtplib
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg2
from psycopg2 import errors as pg_errors

from odoo import SUPERUSER_ID, fields, modules
from odoo.exceptions import AccessError
from odoo.tools import SQL, exception_to_unicode, split_every
from odoo.tools.mail import email_split_and_format

from odoo.addons.base.models.ir_mail_server import MailDeliveryException

from ..models import params
from ..models.ir_mail_server import MAIL_ID_CONTEXT, attempt_details
from ..models.smtp_routing_reservation import backend
from ..models.smtp_routing_send_as import Judge
from ..models.smtp_routing_server_state import DB_NOW, db_now
from ..tools import lanes as lanes_tool
from ..tools import limits as limits_tool
from ..tools import pipelining, planning
from ..tools.addresses import split_addresses
from ..tools.smtp_errors import Outcome, classified, classify_reply, refused_recipients
from . import explain

_logger = logging.getLogger(__name__)

# The Odoo 18 functions this module mirrors (path under the Odoo tree: class.function) and the sha256 of
# their source lines, from ``def`` to the last line. When a test says one changed: read Odoo's new
# version, bring this module in line with it, then put the new hash here.
ODOO_MIRRORS = {
    "addons/mail/models/mail_mail.py:MailMail.send": (
        "f6a682e1a7a0e79ae712f61318a4066343c55fa79e63610caa312b8f5a66651e"
    ),
    "addons/mail/models/mail_mail.py:MailMail._send": (
        "6171a9e78904cd52dc06fe932f9ba8954bc3932bf28e71d50d919d63e48bfa47"
    ),
    "addons/mail/models/mail_mail.py:MailMail._split_by_mail_configuration": (
        "e5394b14f45b57472bb417e29a373006d93fb6555bc1d072dc1ad011e4b2c646"
    ),
    "addons/mail/models/mail_mail.py:MailMail.process_email_queue": (
        "cb8136cce86400affd4eb04860d7553efc4b0a47e26d1bdb2388cd889764b971"
    ),
}

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
MAX_RETRY_AGE_HOURS = 72  # default of smtp_routing.max_retry_age_hours
COMMIT_EVERY = 50
# smtplib's class as imported, not as a test may patch it later (Odoo's mail tests replace smtplib.SMTP
# with a Mock that returns a fake session: those sessions stay on Odoo's sequential path)
SMTP_CLASS = smtplib.SMTP
CLAIM_RETRIES = 3
TO_KEY = "to"  # the message to the mail's own To/Cc addresses; partner messages are "p<partner id>"


def part_key(partner):
    return f"p{partner.id}" if partner else TO_KEY


def new_progress(value=None):
    """A mail's delivery progress: recipient messages sent, failed (reason), invalid, waiting to retry."""
    value = value or {}
    kept = {"stalled_since": value["stalled_since"]} if value.get("stalled_since") else {}  # no server since then
    return {
        **kept,
        "sent": list(value.get("sent") or []),
        "failed": dict(value.get("failed") or {}),
        "invalid": list(value.get("invalid") or []),
        "retry": dict(value.get("retry") or {}),
        "split": list(value.get("split") or []),  # messages refused in part: their addresses are tracked alone
    }


def address_key(key, address):
    """One address of a message, once the message was refused in part (``to:ann@example.com``)."""
    return f"{key}:{address}"


def settled(progress):
    return set(progress["sent"]) | set(progress["failed"]) | set(progress["invalid"]) | set(progress["split"])


@dataclass
class Group:
    """Mails that share a sending configuration: same envelope sender and candidate servers."""

    alias_domain_id: int | bool
    smtp_from: str
    candidates: list  # ir.mail_server records in order (False: Odoo's command-line server)
    mail_ids: list
    smtp_froms: dict = field(default_factory=dict)  # server id -> envelope sender through that server
    plan: planning.Plan | None = None  # tools.planning's decision for (the first of) these mails

    def smtp_from_for(self, server):
        return self.smtp_froms.get(server.id if server else False, self.smtp_from)


@dataclass
class Results:
    """What the run settled since its last flush: the states to write."""

    sent: dict = field(default_factory=dict)  # mail id -> (server id, message id, success pids, failure type)
    # mail id -> (server id, reason, failure type, success pids, failure type kept on the mail itself)
    failed: dict = field(default_factory=dict)
    progress: dict = field(default_factory=dict)  # mail id -> progress to store (recipient results so far)
    waiting: dict = field(default_factory=dict)  # mail id -> (server id, retry at, reason): recipients to retry


@dataclass
class Ledger:
    """What one server's reservation counted, and what of it was really sent (to give the rest back).

    The run's own view of its row in the ``smtp_routing.reservation`` ledger (``row_id``), which lets
    another run give back what a killed worker held."""

    reserved: object = None  # tools.limits.State the reservation left
    costs: dict = field(default_factory=dict)  # mail id -> (units reserved, bytes)
    used: dict = field(default_factory=dict)  # mail id -> units sent
    row_id: int | None = None  # the ledger row in PostgreSQL
    started: set = field(default_factory=set)  # mails of the chunks started: at risk (committed in the row)

    def at_risk(self):
        """(units, mails, bytes) of the mails of the chunks started: sent, or possibly sent."""
        mine = [self.costs[mail_id] for mail_id in self.started if mail_id in self.costs]
        return sum(units for units, _size in mine), len(mine), sum(size for _units, size in mine)

    def unused(self):
        cost = sum(max(units - self.used.get(mail_id, 0), 0) for mail_id, (units, _size) in self.costs.items())
        idle = [mail_id for mail_id in self.costs if not self.used.get(mail_id)]
        return cost, len(idle), sum(self.costs[mail_id][1] for mail_id in idle)


class _Features:
    """The ESMTP features a server announced, where Odoo's code looks for them (``session.__obj__``)."""

    def __init__(self, features):
        self.esmtp_features = dict(features)

    def has_extn(self, name):
        return name.lower() in self.esmtp_features


class LaneSession:
    """What ``send_email()`` sees of a server's lanes for one group of mails.

    Odoo's session attributes (``from_filter``, ``smtp_from``) and a
    ``send_message()`` that flattens the prepared message, hands it to the lane of
    the mail being sent and returns at once: the run settles the lane's result,
    and records the attempt in the delivery log (``send_email()`` leaves it to the run).
    """

    smtp_routing_records_attempts = True  # send_email(): the run records what this session sends

    def __init__(self, lanes, smtp_from, from_filter):
        self.smtp_routing_lanes = lanes
        self.smtp_from = smtp_from
        self.from_filter = from_filter
        self.__obj__ = _Features(lanes.features)
        self.lane = None  # the lane of the mail being sent
        self.entry = None  # its _InFlight
        self.token = None  # bookkeeping of the next message (part key, cost, what the log records of it)

    def send_message(self, msg, from_addr=None, to_addrs=None):
        from_addr, to_addrs, data, options = pipelining.flatten(
            msg, from_addr, to_addrs, smtputf8="smtputf8" in self.__obj__.esmtp_features
        )
        token = dict(self.token or {})
        self.entry.jobs += 1
        self.lane.submit(lanes_tool.Job(self.entry.mail.id, from_addr, to_addrs, data, options, token))
        return {}

    def quit(self):
        """The run closes the lanes (they are reused by the next groups)."""


@dataclass
class _InFlight:
    """A mail handed to a lane: what its messages became."""

    mail: object
    jobs: int = 0
    sent: tuple = None  # what _send_one returned: (message id, messages left, failure type)
    retry: object = None  # _RetryElsewhere: the server failed
    error: object = None  # a permanent failure of the mail
    skipped: bool = False  # a message was recalled (the server failed meanwhile): the rest goes elsewhere


class _RetryElsewhere(Exception):
    """The server is the problem, another server may do (recipients already served are kept)."""

    def __init__(self, error, outcome):
        super().__init__(str(error))
        self.error = error
        self.outcome = outcome


class _ConfigError(Exception):
    """This server cannot be used as configured; the message says what to fix."""


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
        # mail id -> how it was routed: {"plan": the planner's codes, "notes": [[code, params]]}, stored on the
        # mail and rendered in its reader's language (sending/explain.py); mails of one plan share the dict
        self.explanations = {}
        self.stored_plans = {}
        self.judge = Judge(self.env)  # Send-As: facts read once per acting user for the run
        self.send_as = {}  # mail id -> Send-As verdict (a grant may name the servers that may carry it)
        self.results = Results()
        self.first_error = None
        self.progress = {}  # mail id -> recipient results, loaded when first touched
        self.parts = {}  # mail id -> [(part key, recipients)] still to send in this run
        self.now = None  # the database clock at the start of the run
        self.pid = None  # our PostgreSQL backend, named in our claims
        self.pid_started = None  # when it started: with the pid, names us in the reservation ledger
        self.lease = LEASE_SECONDS
        self.beat_at = 0.0
        self.unfinished = set()  # claimed, and no state of ours written for them yet: our leases to extend
        self.lost = set()  # claims another worker took over: never sent by us
        self.refused_now = {}  # mail id -> recipient messages refused in this run (not tried again in it)
        self.partly_refused = {}  # what the server refused of the last message it accepted (RCPT, per address)
        self.pool = {}  # (server id, connection settings) -> tools.lanes.ServerLanes, reused by every group
        self.openers = {}  # same key -> how to open one more connection (through connect())

    # -- entry point ------------------------------------------------------------------------------
    def execute(self):
        mails = self._claim()
        # the reservations of killed workers go back before we reserve (once, whoever recovers first)
        self.env["smtp_routing.reservation"].sudo()._smtp_routing_take_over()
        if not mails:
            return True
        self.cooling, self.failing = self.State._smtp_routing_health(self._all_servers())
        try:
            for group in self._plan(mails):
                self._run_group(group)
            self._flush()
        finally:
            self._close_lanes()
        if self.raise_exception and self.first_error:
            raise MailDeliveryException(self.env._("Mail Delivery Failed"), self.first_error)
        return True

    # -- claiming -----------------------------------------------------------------------------------
    def _claim(self):
        """Claim the mails no live worker holds: free, lease ended, or claimed by a backend that is gone."""
        ids = tuple(self.mails.ids)
        if not ids:
            return self.Mail
        self.Mail.flush_model(["state", "smtp_routing_lease_until", "smtp_routing_lease_pid", "scheduled_date"])
        self.lease = self._lease_seconds()
        cr = self.env.cr
        claimed = []
        for attempt in range(CLAIM_RETRIES):
            if self.auto_commit:
                # a fresh snapshot, so leases committed by other workers are visible (queue runs only: auto_commit)
                cr.commit()  # pylint: disable=invalid-commit
            try:
                cr.execute(
                    SQL(
                        "SELECT id FROM mail_mail m WHERE id IN %s AND state = 'outgoing' "
                        "AND (smtp_routing_lease_until IS NULL OR smtp_routing_lease_until < %s "
                        "  OR (smtp_routing_lease_pid IS NOT NULL AND NOT EXISTS ("
                        "      SELECT 1 FROM pg_stat_activity a WHERE a.pid = m.smtp_routing_lease_pid))) "
                        "ORDER BY id FOR UPDATE SKIP LOCKED",
                        ids,
                        DB_NOW,
                    )
                )
                claimed = [row[0] for row in cr.fetchall()]
                self.pid, self.pid_started = backend(cr)
                if claimed:
                    cr.execute(
                        SQL(
                            "UPDATE mail_mail SET smtp_routing_lease_until = %s + %s * interval '1 second', "
                            "smtp_routing_lease_pid = %s WHERE id IN %s RETURNING smtp_routing_lease_until",
                            DB_NOW,
                            self.lease,
                            self.pid,
                            tuple(claimed),
                        )
                    )
                    if self.auto_commit:
                        self._wake_cron(cr.fetchone()[0])  # if we die, the cron takes our mails when the lease ends
                self._wake_for_other_claims(ids, claimed)
                if self.auto_commit:
                    # the claim must be visible to other workers before we send anything: that is what makes it one
                    cr.commit()  # pylint: disable=invalid-commit
                break
            except pg_errors.SerializationFailure:
                if not self.auto_commit or attempt == CLAIM_RETRIES - 1:
                    raise
                cr.rollback()
        self.mails.invalidate_recordset(["state", "smtp_routing_lease_until", "smtp_routing_lease_pid"])
        self.now = db_now(cr)
        self.beat_at = time.monotonic()
        self.unfinished = set(claimed)
        return self.Mail.browse(claimed)

    def _wake_for_other_claims(self, ids, claimed):
        """Mails asked for but held by a live worker: wake the cron when the first of those claims ends."""
        self.env.cr.execute(
            SQL(
                "SELECT min(smtp_routing_lease_until) FROM mail_mail WHERE id IN %s AND state = 'outgoing' "
                "AND smtp_routing_lease_until >= %s AND NOT (id = ANY(%s::int[]))",
                ids,
                DB_NOW,
                list(claimed),
            )
        )
        until = self.env.cr.fetchone()[0]
        if until:
            self._wake_cron(until)

    def _wake_cron(self, at):
        cron = self.env.ref("mail.ir_cron_mail_scheduler_action", raise_if_not_found=False)
        if cron:
            cron.sudo()._trigger(at=at)

    def _lease_seconds(self):
        return max(params.integer(self.env, "smtp_routing.lease_seconds", LEASE_SECONDS), 1)

    def _still_ours(self, mail_id):
        """Before each send: extend our claims when a third of the lease has passed, and say whether this
        mail is still ours (a mail whose claim another worker took over is never sent by us)."""
        if time.monotonic() - self.beat_at >= self.lease / 3:
            self._beat()
        return mail_id not in self.lost

    def _beat(self):
        """Extend our claims on the mails not yet done, and learn which were taken over.

        In queue mode on our own cursor, between two commits: a separate connection would
        update rows that our REPEATABLE READ transaction writes later (a serialization failure).
        What we sent and did not commit yet is unchanged by it (still re-sent after a crash)."""
        self.beat_at = time.monotonic()
        ids = tuple(self.unfinished - self.lost)
        if not ids or not self.pid:
            return
        query = SQL(
            "UPDATE mail_mail SET smtp_routing_lease_until = %s + %s * interval '1 second' "
            "WHERE id IN %s AND smtp_routing_lease_pid = %s AND state = 'outgoing' RETURNING id",
            DB_NOW,
            self.lease,
            ids,
            self.pid,
        )
        cr = self.env.cr
        if self.auto_commit:
            try:
                # the lease extension is its own short transaction: it must reach other workers now, not at the
                # end of the chunk (they take over a claim whose lease ended); queue runs only (auto_commit)
                cr.commit()  # pylint: disable=invalid-commit
                cr.execute("SET LOCAL lock_timeout = '2s'")
                cr.execute(query)
                kept = {row[0] for row in cr.fetchall()}
                cr.commit()  # pylint: disable=invalid-commit
            except (pg_errors.SerializationFailure, pg_errors.LockNotAvailable):
                cr.rollback()
                return  # someone is claiming right now: check again at the next send
        elif getattr(threading.current_thread(), "testing", False):
            with cr.savepoint(flush=False):
                cr.execute(query)
                kept = {row[0] for row in cr.fetchall()}
        else:
            return  # send now without commits: our row locks hold the mails until our transaction ends
        lost = set(ids) - kept
        if lost:
            _logger.warning("smtp_routing: %s mail(s) were taken over by another worker; not sending them", len(lost))
        self.lost |= lost

    # -- planning -------------------------------------------------------------------------------------
    def _all_servers(self):
        return self.env["ir.mail_server"].sudo().search([], order="sequence, id")

    def _plan(self, mails):
        """Groups of mails that share a plan. The decision is tools.planning's; this gathers its facts:
        the routes, the servers, Odoo's own pick for mails no route takes, the Send-As verdict, health."""
        Server = self.env["ir.mail_server"].sudo()
        servers = self._all_servers()
        routes = [route._smtp_routing_spec() for route in self.env["smtp_routing.route"].sudo().search([])]
        specs = [server._smtp_routing_spec() for server in servers]
        health = planning.Health(cooling={sid: fields.Datetime.to_string(until) for sid, until in self.cooling.items()})
        plans = {}  # the same facts, the same plan: computed once

        def plan_for(facts, allowed, odoo=None):
            key = (facts, allowed, odoo)
            if key not in plans:
                plans[key] = planning.plan_mail(
                    facts, routes, specs, Server._match_from_filter, odoo, send_as_server_ids=allowed, health=health
                )
            return plans[key]

        groups, stock = {}, []
        for mail in mails:
            denied = self._access_problem(mail)
            if denied:
                self._fail_access(mail, denied)
                continue
            problem = self._send_as_problem(mail)
            if problem:
                self._fail_send_as(mail, problem)
                continue
            facts = mail._smtp_routing_facts(lang=bool(routes))
            if planning.match_route(facts, routes)[0] is None:
                stock.append((mail, facts))
                continue
            emails_from = email_split_and_format(mail.email_from)
            email_from = emails_from[0] if emails_from else mail.email_from
            plan = plan_for(facts, self._send_as_servers(mail))
            self._add_to_group(groups, mail, plan, mail.record_alias_domain_id.id, email_from, every_server=True)
        if stock:
            by_id = dict(stock)
            Mail = self.Mail.browse([mail.id for mail, _facts in stock])
            for server_id, alias_domain_id, smtp_from, batch_ids in Mail._split_by_mail_configuration():
                named = Server.browse(server_id) if server_id and server_id not in servers.ids else None
                odoo = planning.OdooChoice(server_id or None, smtp_from, named._smtp_routing_spec() if named else None)
                for mail in self.Mail.browse(batch_ids):
                    allowed = self._send_as_servers(mail)
                    plan = plan_for(by_id[mail], allowed, odoo)
                    self._add_to_group(groups, mail, plan, alias_domain_id, smtp_from, every_server=allowed is not None)
        return list(groups.values())

    def _add_to_group(self, groups, mail, plan, alias_domain_id, smtp_from, every_server):
        """Mails with the same plan and envelope sender travel together; the envelope sender through each
        server is Odoo's (From filter rules): for every server of a route, for the own and Send-As servers."""
        if id(plan) not in self.stored_plans:
            self.stored_plans[id(plan)] = {"plan": plan.to_json(), "notes": []}
        self.explanations[mail.id] = self.stored_plans[id(plan)]
        key = (alias_domain_id, smtp_from, tuple((line.server_id, line.code) for line in plan.candidates))
        if key not in groups:
            Server = self.env["ir.mail_server"].sudo()
            candidates = [Server.browse(line.server_id) if line.server_id else False for line in plan.candidates]
            smtp_froms = {
                line.server_id: self._smtp_from_through(alias_domain_id, smtp_from, Server.browse(line.server_id))
                for line in plan.candidates
                if line.server_id and (every_server or line.code in (planning.OWN_SERVER, planning.SEND_AS_SERVER))
            }
            groups[key] = Group(alias_domain_id, smtp_from, candidates, [], smtp_froms, plan=plan)
        groups[key].mail_ids.append(mail.id)

    def _smtp_from_through(self, alias_domain_id, email_from, server):
        """The envelope sender Odoo would use for ``email_from`` through ``server`` (From filter rules)."""
        return self._sender_env(alias_domain_id).sudo()._find_mail_server(email_from, mail_servers=server)[1]

    def _send_as_servers(self, mail):
        """The servers a Send-As permission limits this mail to (None: not limited)."""
        verdict = self.send_as.get(mail.id)
        if verdict is not None and verdict.code == "granted_through":
            return frozenset(verdict.server_ids)
        return None

    def _explained(self, mail_id, code, **params):
        """The mail's stored routing with one more note of what happened (a new dict: plans are shared)."""
        stored = self.explanations.get(mail_id) or {"plan": None, "notes": []}
        return {**stored, "notes": [*stored["notes"], [code, params]]}

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
            return exception_to_unicode(error)
        return None

    def _fail_access(self, mail, reason):
        self.results.failed[mail.id] = (False, reason, "unknown", [], "unknown")
        self.first_error = self.first_error or reason

    def refuse(self, problem):
        """Fail the given mails as refused by the Send-As check (message_post judged them before they left)."""
        mails = self._claim()
        for mail in mails:
            self._fail_send_as(mail, problem)
        self._flush()

    def _fail_send_as(self, mail, problem):
        reason = self._reason(Outcome("send_as_denied", text=problem))
        self.results.failed[mail.id] = (False, reason, "mail_from_invalid", [], "mail_from_invalid")
        self.explanations[mail.id] = {"plan": None, "notes": [["send_as_refused", {}]]}
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
        """Each candidate in turn: reserve room under its limits, then (only with room) connect and send.

        A server at its cap, cooling down or archived is never connected to. What was reserved and not
        sent (a failed connection, a failure mid-batch) is given back."""
        order = {mail_id: index for index, mail_id in enumerate(group.mail_ids)}
        pending = list(group.mail_ids)
        blocked = []  # (until, reason, kind) of candidates that could not take everything (kind: failure, limit)
        refusals = defaultdict(list)  # mail id -> reasons of servers whose limits it can never fit
        config = []  # reasons of candidates that cannot be used as configured
        now = self.now
        for server in group.candidates:
            if not pending:
                break
            if server and self.cooling.get(server.id, now) > now:
                blocked.append((self.cooling[server.id], self._cooling_reason(server), "failure"))
                continue
            if server and not server.active:
                config.append(self._archived_reason(server))
                continue
            ledger = Ledger()
            grants, overflow, refused = self._reserve(server, pending, blocked, ledger)
            for mail_id, reason in refused:
                refusals[mail_id].append(reason)
            refused_ids = [mail_id for mail_id, _reason in refused]
            if not grants:  # no room: no connection
                pending = sorted(set(overflow + refused_ids), key=order.get)
                continue
            granted = [mail_id for mail_id, _parts in grants]
            try:
                session = self._connect(server, group)
            except _ConfigError as error:
                self._give_back(server, ledger)
                config.append(str(error))
                pending = sorted(set(granted + overflow + refused_ids), key=order.get)
                continue
            if session is False:
                self._give_back(server, ledger)
                if server:
                    blocked.append((self.cooling.get(server.id, now), self._cooling_reason(server), "failure"))
                    pending = sorted(set(granted + overflow + refused_ids), key=order.get)
                    continue
                return  # Odoo's command-line server failed: the mails were failed as stock Odoo does
            try:
                retry, left = self._send_batch(server, session, group, grants, ledger)
            finally:
                self._end_session(server, session, ledger)
            if server:
                self.State._smtp_routing_finish_batch(server)
            if retry and server:
                blocked.append((self.cooling.get(server.id, now), self._cooling_reason(server), "failure"))
            pending = sorted(set(retry + left + overflow + refused_ids), key=order.get)
        if pending:
            self._not_sent(pending, group, blocked, refusals, config)

    def _not_sent(self, pending, group, blocked, refusals, config):
        """Mails no candidate took: fail those no server's limits can ever hold, or that only
        misconfigured servers could carry; defer the others to the first free slot."""
        servers = [server for server in group.candidates if server]
        hopeless = [mail_id for mail_id in pending if servers and len(refusals[mail_id]) >= len(servers)]
        for mail_id in hopeless:
            self._fail_mail(mail_id, False, refusals[mail_id][0], "unknown")
        pending = [mail_id for mail_id in pending if mail_id not in hopeless]
        if pending and config and not blocked:
            for mail_id in pending:
                self._fail_mail(mail_id, False, config[0], "mail_smtp")
            return
        if pending:
            self._defer(pending, group, blocked)

    def _end_session(self, server, session, ledger):
        """After a server's batch: the session ends (lanes stay open for the next group), the unused
        reservation goes back."""
        if isinstance(session, LaneSession):
            self._release_lanes(server, session, ledger)
        elif session is not None:
            session.quit()
        self._give_back(server, ledger)

    def _cooling_reason(self, server):
        return ["cooling", {"server": server.name}]  # words: sending/explain.reason_text, in the reader's language

    def _config_reason(self, text):
        label = dict(self.env["smtp_routing.delivery.log"]._fields["category"]._description_selection(self.env))
        return f"{label['config']} - {text}"

    def _archived_reason(self, server):
        return self._config_reason(
            self.env._(
                "The server %(server)s is archived: unarchive it, or clear the mail's outgoing server so "
                "another server can send it.",
                server=server.name,
            )
        )

    def _connect(self, server, group):
        """The session (None under Odoo's test mode: send_email pretends), or False when the server failed.

        Raises _ConfigError when the server cannot be used as configured: never a reason to cool it down."""
        IrMailServer = self._sender_env(group.alias_domain_id)
        lanes = self._pooled(server)
        if lanes is not None:
            return LaneSession(lanes, group.smtp_from_for(server), lanes.from_filter)
        try:
            connection = IrMailServer.connect(
                mail_server_id=server.id if server else None, smtp_from=group.smtp_from_for(server)
            )
            return self._open_lanes(server, connection, IrMailServer, group)
        except Exception as error:  # noqa: BLE001 - classified, logged by connect(), then failed over
            outcome = classified(error)  # what connect() classified and recorded
            self.first_error = self.first_error or str(error)
            # Only transport, login, TLS, time-out and 4xx failures mean "this server, not now" (cooldown,
            # fail-over); a configuration error or an error nothing explains fails fast, as stock Odoo does.
            if server and outcome.category in ("config", "other"):
                raise _ConfigError(self._reason(outcome)) from error
            if server:
                self.cooling[server.id] = self.State._smtp_routing_failed(server, outcome.category)
                self.failing.add(server.id)
            else:
                for mail_id in group.mail_ids:
                    self._fail_mail(mail_id, server, self._reason(outcome), "mail_smtp")
            return False

    # -- lanes: parallel connections, pipelining, reuse --------------------------------------------------
    @staticmethod
    def _lanes_key(server):
        return (
            server.id,
            server.smtp_host,
            server.smtp_port,
            server.smtp_user,
            server.smtp_encryption,
            server.smtp_authentication,
        )

    def _pooled(self, server):
        """The open lanes of this server (from an earlier group of this run), or None."""
        if not server:
            return None
        lanes = self.pool.get(self._lanes_key(server))
        if lanes is not None and lanes.recalled.is_set():
            self._drop_lanes(server)
            return None
        return lanes

    def _open_lanes(self, server, connection, IrMailServer, group):  # noqa: N803 - a model
        """Lanes over a fresh connection: a LaneSession; else the connection itself (Odoo's sequential path).

        Only a real smtplib connection to a server record goes to lanes: under Odoo's test mode
        (None) and with Odoo's test doubles, everything stays as Odoo does it."""
        smtp = getattr(connection, "__obj__", None)
        if not server or connection is None or not isinstance(smtp, SMTP_CLASS):
            return connection
        smtp.ehlo_or_helo_if_needed()
        lanes = lanes_tool.ServerLanes(connection, server.smtp_routing_connections, smtp.esmtp_features)
        lanes.from_filter = getattr(connection, "from_filter", server.from_filter)
        key = self._lanes_key(server)
        self.pool[key] = lanes
        smtp_from = group.smtp_from_for(server)
        self.openers[key] = lambda: IrMailServer.connect(mail_server_id=server.id, smtp_from=smtp_from)
        return LaneSession(lanes, smtp_from, lanes.from_filter)

    def _add_lane(self, server, lanes):
        """One more connection to a busy server; if it cannot be opened, the server keeps the lanes it has."""
        try:
            connection = self.openers[self._lanes_key(server)]()
        except Exception as error:  # noqa: BLE001 - logged by connect(); no cooldown for an extra connection
            _logger.info(
                "smtp_routing: %s: no further connection (%s); going on with %s", server.name, error, len(lanes.lanes)
            )
            lanes.limit = len(lanes.lanes)
            return
        smtp = getattr(connection, "__obj__", None)
        if not isinstance(smtp, SMTP_CLASS):
            lanes.limit = len(lanes.lanes)
            return
        lanes.add(connection)

    def _drop_lanes(self, server):
        lanes = self.pool.pop(self._lanes_key(server), None)
        if lanes is not None:
            lanes.recall()
            lanes.close(timeout=1.0)

    def _close_lanes(self):
        """QUIT every connection of the run (in parallel), and wait a little for the lanes to end."""
        pool, self.pool = self.pool, {}
        deadline = time.monotonic() + lanes_tool.JOIN_SECONDS
        for lanes in pool.values():
            lanes.close(timeout=0)
        for lanes in pool.values():
            for lane in lanes.lanes:
                lane.join(max(deadline - time.monotonic(), 0.0))

    def _release_lanes(self, server, session, ledger):
        """After a server's batch: nothing may stay in flight. On an error path, what is queued is
        recalled and what went anyway counts as used (never given back); a failed server's lanes close."""
        lanes = session.smtp_routing_lanes
        if lanes.outstanding:
            lanes.recall()
            while lanes.outstanding:
                result = lanes.collect(block=True)
                if result is not None and result.sent:
                    mail_id = result.job.mail_id
                    ledger.used[mail_id] = ledger.used.get(mail_id, 0) + result.job.token.get("cost", 1)
        if lanes.recalled.is_set():
            self._drop_lanes(server)

    # -- limits -----------------------------------------------------------------------------------------
    def _reserve(self, server, pending, blocked, ledger):
        """([(mail id, parts allowed or None for all)], overflow ids, [(mail id, refusal reason)])."""
        mails = self.Mail.browse(pending)
        sendable = []
        for mail in mails:
            if self._parts(mail):
                sendable.append(mail)
            else:
                self._wait_for_retry(mail, server)  # only recipients waiting for their retry are left
        if not server or not server._smtp_routing_limits().any:
            return [(mail.id, None) for mail in sendable], [], []
        items = [self._item(mail) for mail in sendable]
        limits = server._smtp_routing_limits()

        def granted(reservation):  # (units, mails, bytes) the reservation counts, for its ledger row
            costs = limits_tool.granted_costs(limits, items, reservation.grants)
            return sum(units for units, _size in costs.values()), len(costs), sum(size for _u, size in costs.values())

        reservation, ledger.row_id = (
            self.env["smtp_routing.reservation"]
            .sudo()
            ._smtp_routing_open(server, items, (self.pid, self.pid_started), granted)
        )
        ledger.reserved = reservation.state
        grants = []
        for index, cost in limits_tool.granted_costs(limits, items, reservation.grants).items():
            grants.append((sendable[index].id, dict(reservation.grants)[index]))
            ledger.costs[sendable[index].id] = cost
        names = server._smtp_routing_limit_names()
        refused = [
            (
                sendable[refusal.index].id,
                self.env._(
                    "Refused: it needs %(cost)s at once, but the %(limit)s limit of %(server)s allows %(cap)s "
                    "(%(excess)s too many). Send it to fewer recipients at a time, or raise the limit.",
                    cost=refusal.cost,
                    limit=names.get(refusal.limit, refusal.limit),
                    server=server.name,
                    cap=refusal.cap,
                    excess=refusal.excess,
                ),
            )
            for refusal in reservation.refused
        ]
        settled = {mail_id for mail_id, _parts in grants} | {mail_id for mail_id, _reason in refused}
        partial = [mail_id for mail_id, parts in grants if parts]
        overflow = [mail.id for mail in sendable if mail.id not in settled]
        if reservation.next_slot and (overflow or partial):
            blocked.append(
                (
                    reservation.next_slot,
                    ["limit", {"server": server.name, "limit": reservation.blocked_by}],
                    "limit",
                )
            )
        return grants, overflow, refused

    def _give_back(self, server, ledger):
        """Give back what the reservation counted and was not sent, and close its ledger row (one transaction)."""
        if not server or ledger.reserved is None:
            return
        cost, mails, size = ledger.unused()
        if cost or mails or ledger.row_id:
            try:
                self.env["smtp_routing.reservation"].sudo()._smtp_routing_close(
                    server, ledger.row_id, ledger.reserved, cost, mails, size
                )
            except Exception:  # noqa: BLE001 - never hide the error that brought us here
                _logger.exception("smtp_routing: could not give back %s unsent unit(s) of %s", cost, server.name)
            ledger.reserved = None  # given back: never twice

    def _mark_at_risk(self, ledger, chunk_ids):
        """Before a chunk goes: its mails may be sent from now on, and a killed run's taker must not give them
        back (committed at once, one short transaction per chunk)."""
        if not ledger.row_id:
            return
        ledger.started.update(chunk_ids)
        self.env["smtp_routing.reservation"].sudo()._smtp_routing_at_risk(ledger.row_id, *ledger.at_risk())

    def _progress(self, mail):
        if mail.id not in self.progress:
            self.progress[mail.id] = new_progress(mail.smtp_routing_progress)
        return self.progress[mail.id]

    def _parts(self, mail):
        """[(part key, recipients)] of the mail's SMTP messages still to send now, in Odoo's sending order."""
        progress = self._progress(mail)
        done = settled(progress) | self.refused_now.get(mail.id, set())  # refused in this run: not again in it
        plain = len(split_addresses(mail.email_to or "")) + len(split_addresses(mail.email_cc or ""))
        messages = [(TO_KEY, max(plain, 1))] if plain or not mail.recipient_ids else []
        messages += [(part_key(partner), 1) for partner in mail.recipient_ids]
        parts = []
        for key, count in messages:
            if key not in done:
                parts.append((key, count))
            parts += [(sub, 1) for sub in self._address_retries(progress, key) if sub not in done]
        self.parts[mail.id] = parts
        return parts

    @staticmethod
    def _address_retries(progress, key):
        return [sub for sub in progress["retry"] if sub.startswith(f"{key}:")]

    def _item(self, mail):
        parts = self.parts[mail.id]
        size = len(mail.body_html or "") + sum(mail.attachment_ids.mapped("file_size"))
        recipients = sum(count for _key, count in parts)
        return limits_tool.Item(
            recipients=recipients, size=size, messages=len(parts), parts=tuple(c for _k, c in parts)
        )

    def _part_cost(self, server, mail_id, key):
        if not server or not server.smtp_routing_count_recipients:
            return 1
        return dict(self.parts.get(mail_id, [])).get(key, 1)

    # -- sending ------------------------------------------------------------------------------------------
    def _sender_env(self, alias_domain_id, email=None, validated_to=None, mail_id=None):
        """ir.mail_server with what Odoo's send_email() and ours read of the call (Odoo's signature is fixed):
        the alias domain's addresses, the validated recipients, the mail.mail id for the delivery log."""
        IrMailServer = self.env["ir.mail_server"]
        context = {}
        if mail_id:
            context[MAIL_ID_CONTEXT] = mail_id
        if validated_to is not None:
            context["send_validated_to"] = validated_to
        if alias_domain_id:
            alias_domain = self.env["mail.alias.domain"].sudo().browse(alias_domain_id)
            context["domain_notifications_email"] = alias_domain.default_from_email
            context["domain_bounce_address"] = (
                email and email["headers"].get("Return-Path")
            ) or alias_domain.bounce_email
        return IrMailServer.with_context(**context) if context else IrMailServer

    def _send_batch(self, server, session, group, grants, ledger):
        """Send through one open session; returns (mails to try on the next server, mails with messages left).

        Mails go in chunks of ``COMMIT_EVERY``, each browsed on its own: a commit clears
        the ORM cache, and a chunk's prefetch set must not be the whole batch (re-reading
        mail.mail's inherited fields for every mail of the batch after each commit).
        """
        budgets = dict(grants)
        mail_ids = [mail_id for mail_id, _parts in grants]
        if not isinstance(session, LaneSession):
            self._watch_refusals(session)
        position, left = 0, []
        for chunk_ids in split_every(COMMIT_EVERY, mail_ids):
            self._mark_at_risk(ledger, chunk_ids)
            retry = self._send_chunk(server, session, group, list(chunk_ids), budgets, ledger, left)
            position += len(chunk_ids)
            if retry:
                return retry + list(mail_ids[position:]), left
            if self.auto_commit:
                self._flush()
        if server and server.id in self.failing:
            self.State._smtp_routing_succeeded(server)
            self.failing.discard(server.id)
        return [], left

    def _follower_status(self, mails):
        with_unfollow = mails.filtered(lambda m: m.body_html and "/mail/unfollow" in m.body_html)
        if not with_unfollow:
            return None
        return self.env["mail.followers"]._get_mail_recipients_follower_status(with_unfollow.ids)

    def _send_chunk(self, server, session, group, chunk_ids, budgets, ledger, left):
        """Send one chunk; returns the mails that must go elsewhere (the server failed), in order."""
        if isinstance(session, LaneSession):
            return self._send_chunk_lanes(server, session, group, chunk_ids, budgets, ledger, left)
        mails = self.Mail.browse(chunk_ids)
        follower_status = self._follower_status(mails)
        for index, mail in enumerate(mails):
            if not self._still_ours(mail.id):
                self.unfinished.discard(mail.id)
                continue
            progress = self._progress(mail)
            try:
                message_id, messages_left, failure_type = self._send_one(
                    mail, server, session, group, follower_status, budgets.get(mail.id), ledger
                )
            except _RetryElsewhere as retry:
                self.results.progress[mail.id] = progress
                self.first_error = self.first_error or str(retry.error)
                if server:
                    self.cooling[server.id] = self.State._smtp_routing_failed(server, retry.outcome.category)
                    self.failing.add(server.id)
                return list(chunk_ids[index:])
            except (MemoryError, psycopg2.Error):
                raise
            except Exception as error:  # noqa: BLE001 - a permanent failure of this mail only
                self._record_failure(mail, server, error)
                continue
            self._mail_done(mail, server, message_id, messages_left, failure_type, left)
        return []

    def _mail_done(self, mail, server, message_id, messages_left, failure_type, left):
        """Every message of the mail that was to go through this server has its result."""
        progress = self._progress(mail)
        self.results.progress[mail.id] = progress
        if messages_left:
            left.append(mail.id)
        elif any(entry.get("at") for entry in progress["retry"].values()):
            self._wait_for_retry(mail, server)
        else:
            self._settle(mail, server.id if server else False, message_id, failure_type)

    def _send_chunk_lanes(self, server, session, group, chunk_ids, budgets, ledger, left):
        """Send one chunk through the server's lanes.

        This thread builds and prepares each mail and hands its messages to one lane (all of a mail's
        to the same lane, in order), settling the results that came back meanwhile; at the end of the
        chunk it waits for every result (nothing stays in flight past a flush). After a failure of the
        server, nothing more starts on it: the mails not sent (or not completely) go elsewhere."""
        lanes = session.smtp_routing_lanes
        mails = self.Mail.browse(chunk_ids)
        follower_status = self._follower_status(mails)
        entries = {}
        reached = len(mails)
        for index, mail in enumerate(mails):
            self._collect(lanes, entries, ledger, block=False)
            if lanes.recalled.is_set():
                reached = index
                break
            if not self._still_ours(mail.id):
                self.unfinished.discard(mail.id)
                continue
            if not lanes.full and lanes.busy() and len(mails) - index > len(lanes.lanes):
                self._add_lane(server, lanes)
            entry = entries[mail.id] = _InFlight(mail)
            session.lane, session.entry = lanes.pick(), entry
            try:
                entry.sent = self._send_one(mail, server, session, group, follower_status, budgets.get(mail.id), ledger)
            except _RetryElsewhere as retry:
                entry.retry = retry
                lanes.recall()
            except (MemoryError, psycopg2.Error):
                raise
            except Exception as error:  # noqa: BLE001 - a permanent failure of this mail only
                entry.error = error
        while lanes.outstanding:  # the barrier: every result is in before the states are written
            self._collect(lanes, entries, ledger, block=True)
        retry_ids, failure = [], None
        for index, mail in enumerate(mails):
            entry = entries.get(mail.id)
            if entry is None:
                if index >= reached:
                    retry_ids.append(mail.id)  # never handed over: the server failed before
                continue
            if entry.retry or entry.skipped:
                self.results.progress[mail.id] = self._progress(mail)  # what went stays sent
                retry_ids.append(mail.id)
                failure = failure or entry.retry
            elif entry.error is not None:
                self._record_failure(mail, server, entry.error)
            else:
                self._mail_done(mail, server, *entry.sent, left)
        if retry_ids:
            failure = failure or next((e.retry for e in entries.values() if e.retry), None)
            if failure is not None:
                self.first_error = self.first_error or str(failure.error)
                self.cooling[server.id] = self.State._smtp_routing_failed(server, failure.outcome.category)
                self.failing.add(server.id)
        return retry_ids

    def _collect(self, lanes, entries, ledger, block):
        """Settle the results that came back (``block``: wait for one)."""
        while True:
            result = lanes.collect(block)
            if result is None:
                return
            self._settle_job(result, entries[result.job.mail_id], ledger)
            if block:
                return

    def _settle_job(self, result, entry, ledger):
        """One message's result, as the sequential path settles it right after send_email()."""
        token = result.job.token
        if result.skipped:
            entry.skipped = entry.skipped or result.skipped == "recalled"
            return
        mail, key = entry.mail, token["key"]
        progress = self._progress(mail)
        Log = self.env["smtp_routing.delivery.log"]
        if result.sent:
            Log._smtp_routing_record(duration=result.duration, **token["details"])
            self._sent(mail, progress, key, ledger, token["cost"], result.delivery.refused)
            return
        error = result.error
        outcome = classified(error)  # once, here, where the lane's failure comes back
        if not isinstance(error, smtplib.SMTPServerDisconnected):  # as Odoo's send_email() raises it
            wrapped = MailDeliveryException(self.env._("Mail Delivery Failed"), f"{type(error).__name__}: {error}")
            wrapped.__context__ = error
            error = wrapped
            classified(error, outcome)
        Log._smtp_routing_record(outcome=outcome, duration=result.duration, **token["details"])
        try:
            self._send_failed(mail, progress, key, error)
        except _RetryElsewhere as retry:
            entry.retry = entry.retry or retry
        except Exception as failure:  # noqa: BLE001 - a permanent failure of this mail
            if entry.error is None:
                entry.error = failure

    def _settle(self, mail, server_id, message_id, failure_type):
        """Every recipient message of the mail went, failed for good, or was invalid: its final state."""
        progress = self._progress(mail)
        pids = self._partners_served(progress)
        if progress["failed"] and not progress["sent"]:
            reason = next(iter(progress["failed"].values()))
            self.first_error = self.first_error or reason
            self.results.failed[mail.id] = (server_id, reason, "mail_email_invalid", pids, "mail_email_invalid")
        elif progress["sent"] or progress["failed"]:
            if progress["failed"] or progress["invalid"]:
                failure_type = failure_type or "mail_email_invalid"
            refused = [reason for key, reason in progress["failed"].items() if not key.startswith("p")]
            if refused:  # addresses without a partner have no notification: say it on the mail
                self.explanations[mail.id] = self._explained(mail.id, "refused_recipients", refused="; ".join(refused))
            self.results.sent[mail.id] = (server_id, message_id or mail.message_id, pids, failure_type)
        else:  # no valid recipient at all: as stock Odoo, the type goes to notifications only
            reason = self.env._(
                "Error without exception. Probably due to sending an email without computed recipients."
            )
            self.results.failed[mail.id] = (server_id, reason, failure_type, pids, False)

    def _partners_served(self, progress):
        """The partners whose message went (records, as Odoo's post-processing expects)."""
        Partner = self.env["res.partner"]
        return [Partner.browse(int(key[1:])) for key in progress["sent"] if key.startswith("p") and ":" not in key]

    def _wait_for_retry(self, mail, server):
        """Only recipients waiting for a retry are left: the mail waits for the first of them."""
        progress = self._progress(mail)
        self.results.progress[mail.id] = progress
        entries = [entry for entry in progress["retry"].values() if entry.get("at")]
        if not entries:
            return self._settle(mail, server.id if server else False, None, None)
        first = min(entries, key=lambda entry: entry["at"])
        self.results.waiting[mail.id] = (
            server.id if server else False,
            fields.Datetime.to_datetime(first["at"]),
            # the reply's codes when stored (text of entries written by older versions)
            [
                "retry",
                {"count": len(entries), "attempt": first["n"] + 1, "reason": first.get("why") or first["reason"]},
            ],
        )

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

    def _max_retry_age(self):
        return max(params.integer(self.env, "smtp_routing.max_retry_age_hours", MAX_RETRY_AGE_HOURS), 1)

    def _refused(self, mail, progress, key, refusals, delivered):
        """The server refused at RCPT some (``delivered``) or all addresses of the message ``key``.

        A message to one address is deferred or failed as a whole; a message to several is then
        tracked per address, so that the addresses that got it never get it twice."""
        self.refused_now.setdefault(mail.id, set())
        if not delivered and len(refusals) == 1 and ":" not in key:
            self._recipient_refused(progress, key, refusals)
            self.refused_now[mail.id].add(key)
            return
        if ":" not in key:
            progress["sent" if delivered else "split"].append(key)
            progress["retry"].pop(key, None)
        for address, reply in refusals.items():
            sub = key if ":" in key else address_key(key, address)
            self._recipient_refused(progress, sub, {address: reply}, address=address)
            self.refused_now[mail.id].add(sub)

    def _recipient_refused(self, progress, key, refusals, address=None):
        """A refusal at RCPT of this message's recipients: defer (4xx, with back-off) or fail (5xx) it alone."""
        code, text = next(iter(refusals.values()))
        outcome = classify_reply(code, text, "rcpt")
        reason = self._reason(outcome)
        if address:
            reason = f"{address}: {reason}"
        why = ["reply", {**dataclasses.asdict(outcome), "address": address or ""}]  # the reply as the server wrote it
        if not any(400 <= code < 500 for code, _text in refusals.values()):
            progress["failed"][key] = reason
            progress["retry"].pop(key, None)
            return
        entry = progress["retry"].get(key) or {"n": 0, "first": fields.Datetime.to_string(self.now)}
        attempt = entry["n"] + 1
        at = limits_tool.next_retry(
            self.now, attempt, fields.Datetime.to_datetime(entry["first"]), self._max_retry_age()
        )
        if at is None:
            progress["retry"].pop(key, None)
            progress["failed"][key] = self.env._(
                "%(reason)s (still refused after %(hours)s hours of retries; given up)",
                reason=reason,
                hours=self._max_retry_age(),
            )
            return
        progress["retry"][key] = {
            **entry,
            "n": attempt,
            "at": fields.Datetime.to_string(at),
            "reason": reason,
            "why": why,
        }
        if address:
            progress["retry"][key]["address"] = address

    def _send_one(self, mail, server, session, group, follower_status, budget, ledger):
        """Send the mail's recipient messages not yet served (at most ``budget`` of them, None: all).

        Returns (message id, whether messages are left for later, failure type)."""
        IrMailServer = self.env["ir.mail_server"]
        progress = self._progress(mail)
        done = settled(progress) | self.refused_now.get(mail.id, set())
        self._lock_notifications(mail)
        emails_from = email_split_and_format(mail.email_from)
        email_from = emails_from[0] if emails_from else mail.email_from
        email_list = mail._prepare_outgoing_list(
            mail_server=server or mail.mail_server_id, recipients_follower_status=follower_status
        )
        message_id, failure_type, attempted, left = None, None, 0, False
        for email in email_list:
            partner = email.pop("partner_id", None)
            base = part_key(partner)
            validated = email.pop("email_to_normalized", [])
            sends = [] if base in done else [(base, None)]
            sends += [
                (sub, progress["retry"][sub].get("address"))
                for sub in self._address_retries(progress, base)
                if sub not in done
            ]
            for key, address in sends:
                if budget is not None and attempted >= budget:
                    left = True  # for the next window (or the next server)
                    continue
                attempted += 1
                if address:  # only this address of the message, which the others already got
                    email = {**email, "email_to": [address], "email_cc": []}
                validated_to = [address] if address else validated
                sender = self._sender_env(group.alias_domain_id, email, validated_to, mail_id=mail.id)
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
                self.partly_refused = {}
                server_id = server.id if server else None
                if isinstance(session, LaneSession):
                    session.token = {
                        "key": key,
                        "cost": self._part_cost(server, mail.id, key),
                        "details": attempt_details(msg, server_id, mail.id),
                    }
                try:  # the server it goes through is an argument (Odoo: "may yield better log messages")
                    sent_id = sender.send_email(msg, mail_server_id=server_id, smtp_session=session)
                except AssertionError as error:
                    if str(error) != IrMailServer.NO_VALID_RECIPIENT:
                        raise
                    failure_type = (
                        "mail_email_missing"
                        if not email.get("email_to") and failure_type != "mail_email_invalid"
                        else "mail_email_invalid"
                    )
                    progress["invalid"].append(key)
                    continue
                except (MemoryError, psycopg2.Error):
                    raise
                except Exception as error:  # noqa: BLE001 - settled: refusals, failover, or raised again
                    self._send_failed(mail, progress, key, error)
                    continue
                message_id = sent_id
                if isinstance(session, LaneSession):
                    continue  # handed to a lane: its result is settled by _settle_job()
                self._sent(mail, progress, key, ledger, self._part_cost(server, mail.id, key), self.partly_refused)
        return message_id, left, failure_type

    def _sent(self, mail, progress, key, ledger, cost, partly_refused):
        """The server took the message ``key``: for every address, or (``partly_refused``) for some."""
        ledger.used[mail.id] = ledger.used.get(mail.id, 0) + cost
        if partly_refused:  # accepted for some addresses only (stock Odoo forgets the others)
            self._refused(mail, progress, key, partly_refused, delivered=True)
        else:
            progress["sent"].append(key)
            progress["retry"].pop(key, None)

    def _send_failed(self, mail, progress, key, error):
        """The message ``key`` did not go: refused recipients are settled here; a server failure raises
        _RetryElsewhere; any other error is raised again (a permanent failure of the mail)."""
        refusals = refused_recipients(error)
        if refusals is not None:  # these recipients only; the session goes on
            self._refused(mail, progress, key, refusals, delivered=False)
            return
        outcome = classified(error)  # as send_email() (or _settle_job) recorded it
        session_gone = isinstance(error, smtplib.SMTPServerDisconnected) or isinstance(
            getattr(error, "__context__", None), smtplib.SMTPServerDisconnected
        )
        if outcome.failover or session_gone:
            raise _RetryElsewhere(error, outcome) from error
        raise error

    def _watch_refusals(self, session):
        """Keep what the server refused of a message it accepted for other addresses (smtplib returns it;
        Odoo's send_email drops it)."""
        smtp = getattr(session, "__obj__", None)
        if smtp is None or getattr(smtp, "smtp_routing_watched", False):
            return
        original = smtp.send_message

        def send_message(*args, **kwargs):
            refused = original(*args, **kwargs)
            self.partly_refused = dict(refused or {})
            return refused

        smtp.send_message = send_message
        smtp.smtp_routing_watched = True

    # -- results ---------------------------------------------------------------------------------------------
    def _reason(self, outcome):
        """A failure in words for the mail: the words of its history row (one Outcome, one wording)."""
        return self.env["smtp_routing.delivery.log"]._smtp_routing_words(outcome)

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
            outcome = classified(error)
            if outcome.category == "other" and not outcome.smtp_code:
                reason, failure_type = exception_to_unicode(error), "unknown"  # as stock Odoo words it
            else:
                reason, failure_type = self._reason(outcome), FAILURE_TYPES.get(outcome.category, "mail_smtp")
        _logger.info("smtp_routing: mail %s failed: %s", mail.id, reason)
        self._fail_mail(mail.id, server, reason, failure_type)

    def _fail_mail(self, mail_id, server, reason, failure_type):
        """The mail fails; recipient messages that already went keep their success."""
        progress = self.progress.get(mail_id) or new_progress()
        pids = self._partners_served(progress)
        self.results.failed[mail_id] = (server.id if server else False, reason, failure_type, pids, failure_type)
        if mail_id in self.progress:
            self.results.progress[mail_id] = progress
        self.first_error = self.first_error or reason

    def _guarded(self, what, function, *args, **kwargs):
        """Post-processing of some mails in a savepoint: its failure never undoes the others' (already sent)."""
        for model in ("mail.mail", "mail.notification", "mail.message"):  # the sent states stay, whatever comes
            self.env[model].flush_model()
        try:
            with self.env.cr.savepoint(flush=False):  # flushing everything would flush others' pending writes
                function(*args, **kwargs)
                for model in ("mail.mail", "mail.notification", "mail.message"):
                    self.env[model].flush_model()
            return True
        except (MemoryError, pg_errors.SerializationFailure):
            raise
        except Exception:  # noqa: BLE001 - logged; the mails are sent and stay so
            self.env.invalidate_all(flush=False)  # what the failed post-processing left in the cache
            _logger.warning("smtp_routing: post-processing failed for %s", what, exc_info=True)
            return False

    def _postprocess(self, mails, **kwargs):
        if self._guarded(mails, mails._postprocess_sent_message, **kwargs) or len(mails) == 1:
            return
        for mail in mails:  # one mail broke it: post-process the others one by one
            self._guarded(mail, mail._postprocess_sent_message, **kwargs)

    def _partner_notifications(self, mail_ids):
        """[(progress, email notifications)] of mails with recipient results (found before any auto-delete)."""
        Notification = self.env["mail.notification"].sudo()
        wanted = [
            mail_id
            for mail_id in mail_ids
            if self.progress.get(mail_id) and (self.progress[mail_id]["sent"] or self.progress[mail_id]["failed"])
        ]
        if not wanted:
            return []
        by_mail = defaultdict(lambda: Notification)
        for notification in Notification.search(
            [("mail_mail_id", "in", wanted), ("notification_type", "=", "email")], order="id"
        ):
            by_mail[notification.mail_mail_id.id] |= notification
        return [(self.progress[mail_id], by_mail[mail_id]) for mail_id in wanted if mail_id in by_mail]

    def _recipient_notifications(self, found):
        """Show each partner's own result in the chatter: sent, failed (with its reason), or still waiting."""
        for progress, notifications in found:
            notifications = notifications.exists()
            by_partner = {f"p{n.res_partner_id.id}": n for n in notifications}
            changed = False
            for key in progress["sent"]:
                notification = by_partner.get(key)
                if notification and notification.notification_status not in ("sent", "canceled"):
                    notification.write({"notification_status": "sent", "failure_type": False, "failure_reason": False})
                    changed = True
            for key, reason in progress["failed"].items():
                notification = by_partner.get(key)
                if notification and (
                    notification.notification_status != "exception" or notification.failure_reason != reason
                ):
                    notification.write(
                        {
                            "notification_status": "exception",
                            "failure_type": "mail_email_invalid",
                            "failure_reason": reason,
                        }
                    )
                    changed = True
            if changed:
                notifications.mail_message_id.filtered(
                    lambda m: m.is_thread_message()
                )._notify_message_notification_update()

    def _flush(self):
        """Write the states gathered since the last flush, post-process, and commit (queue mode)."""
        results = self.results
        sent, failed = results.sent, results.failed
        self.results = Results()
        Mail = self.Mail
        done_ids = []
        names = {server.id: server.name for server in self._all_servers()}
        for mail_id, progress in results.progress.items():
            Mail.browse(mail_id).smtp_routing_progress = progress
        by_server = defaultdict(list)
        for mail_id, (server_id, _message_id, _pids, _ftype) in sent.items():
            by_server[(server_id, id(self.explanations.get(mail_id)))].append(mail_id)
        for (server_id, _explanation), mail_ids in by_server.items():
            Mail.browse(mail_ids).write(
                {
                    "state": "sent",
                    "failure_reason": False,
                    "smtp_routing_lease_until": False,
                    "smtp_routing_lease_pid": False,
                    "smtp_routing_server_id": server_id,
                    "smtp_routing_deferral": False,
                    "smtp_routing_deferred_reason_text": False,
                    "smtp_routing_plan": self._explained(mail_ids[0], "sent_through", server=names.get(server_id, "-")),
                }
            )
            done_ids += mail_ids
        for mail_id, (_server_id, message_id, _pids, _ftype) in sent.items():
            mail = Mail.browse(mail_id)
            if message_id and mail.message_id != message_id:
                mail.message_id = message_id
        self._write_waiting(results.waiting)
        partial = [mail_id for mail_id in results.progress if mail_id not in sent and mail_id not in failed]
        self._recipient_notifications(self._partner_notifications(partial))
        by_failure_type = defaultdict(lambda: (Mail, []))
        for mail_id, (_server_id, _message_id, pids, failure_type) in sent.items():
            mails, all_pids = by_failure_type[failure_type]
            by_failure_type[failure_type] = (mails | Mail.browse(mail_id), all_pids + pids)
        for failure_type, (mails, pids) in by_failure_type.items():
            found = self._partner_notifications(mails.ids)  # before an auto-delete
            self._postprocess(mails, success_pids=pids, failure_type=failure_type)
            self._recipient_notifications(found)  # each failed partner's own reason
        failed_alike = {}
        for mail_id, (server_id, reason, failure_type, pids, mail_failure_type) in failed.items():
            mail = Mail.browse(mail_id)
            mail.write(
                {
                    "state": "exception",
                    "failure_reason": reason,
                    "failure_type": mail_failure_type,
                    "smtp_routing_lease_until": False,
                    "smtp_routing_lease_pid": False,
                    "smtp_routing_server_id": server_id,
                    "smtp_routing_plan": self.explanations.get(mail_id, False),
                }
            )
            notification_reason = reason if mail_failure_type else False
            # mails that failed alike are post-processed together, as stock Odoo does for a failed batch
            # (one notification update and one bus message per batch, not per mail)
            key = (notification_reason, failure_type, tuple(pids))
            failed_alike[key] = failed_alike.get(key, Mail) | mail
            done_ids.append(mail_id)
        for (notification_reason, failure_type, pids), mails in failed_alike.items():
            found = self._partner_notifications(mails.ids)
            self._postprocess(
                mails, success_pids=list(pids), failure_reason=notification_reason, failure_type=failure_type
            )
            self._recipient_notifications(found)
        self.env["smtp_routing.delivery.log"]._smtp_routing_flush()
        self.unfinished -= set(sent) | set(failed) | set(results.waiting)  # their state is written: not ours to hold
        if self.auto_commit:
            if self.post_send_callback and done_ids:
                self.post_send_callback(done_ids)
            # as stock mail.mail._send with auto_commit: what was sent is recorded before the next chunk goes, so a
            # crash later never sends it again
            self.env.cr.commit()  # pylint: disable=invalid-commit

    def _write_waiting(self, waiting):
        """Mails whose remaining recipients wait for their retry: when, and why."""
        if not waiting:
            return
        for mail_id, (server_id, slot, reason) in waiting.items():
            deferral = {"slot": fields.Datetime.to_string(slot), "reason": reason}
            self.Mail.browse(mail_id).write(
                {
                    "scheduled_date": slot,
                    "smtp_routing_lease_until": False,
                    "smtp_routing_lease_pid": False,
                    "smtp_routing_server_id": server_id,
                    "smtp_routing_deferral": deferral,
                    "smtp_routing_deferred_reason_text": False,
                    "smtp_routing_plan": self._explained(mail_id, "deferred", **deferral),
                }
            )
        self._wake_cron(min(slot for _server_id, slot, _reason in waiting.values()))

    def _stalled(self, mail_ids, reason):
        """Mails no server could take because of failures: fail those stalled longer than the maximum
        retry age, with the last reason; return the others (their stall is recorded from its start)."""
        hours = self._max_retry_age()
        keep = []
        for mail in self.Mail.browse(mail_ids):
            progress = self._progress(mail)
            since = progress.setdefault("stalled_since", fields.Datetime.to_string(self.now))
            self.results.progress[mail.id] = progress
            if self.now - fields.Datetime.to_datetime(since) >= timedelta(hours=hours):
                self._fail_mail(
                    mail.id,
                    False,
                    self.env._(
                        "%(reason)s (no server could take it for %(hours)s hours; given up)",
                        reason=explain.reason_text(self.env, reason),
                        hours=hours,
                    ),
                    "mail_smtp",
                )
            else:
                keep.append(mail.id)
        return keep

    def _defer(self, mail_ids, group, blocked):
        now = self.now
        if blocked:
            slot, reason, _kind = min(blocked, key=lambda entry: entry[0])
            slot = max(slot, now + timedelta(seconds=1))
        else:
            slot, reason = now + timedelta(seconds=60), ["no_server", {}]
        if not any(kind == "limit" for _slot, _reason, kind in blocked):
            mail_ids = self._stalled(mail_ids, reason)  # only failures stand in the way: up to the maximum age
        planned = next((server for server in group.candidates if server), None)
        if not mail_ids:
            return
        for mail_id in mail_ids:
            self.unfinished.discard(mail_id)
            if mail_id in self.progress:
                if any(kind == "limit" for _slot, _reason, kind in blocked):
                    self.progress[mail_id].pop("stalled_since", None)
                self.results.progress[mail_id] = self.progress[mail_id]
        deferral = {"slot": fields.Datetime.to_string(slot), "reason": reason}
        by_plan = defaultdict(list)
        for mail_id in mail_ids:
            by_plan[id(self.explanations.get(mail_id))].append(mail_id)
        for same_plan in by_plan.values():
            self.Mail.browse(same_plan).write(
                {
                    "scheduled_date": slot,
                    "smtp_routing_lease_until": False,
                    "smtp_routing_lease_pid": False,
                    "smtp_routing_server_id": planned.id if planned else False,
                    "smtp_routing_deferral": deferral,
                    "smtp_routing_deferred_reason_text": False,
                    "smtp_routing_plan": self._explained(same_plan[0], "deferred", **deferral),
                }
            )
        self._wake_cron(slot)
        if not modules.module.current_test:
            words = explain.reason_text(self.env, reason)
            _logger.info("smtp_routing: deferred %s mail(s) to %s: %s", len(mail_ids), slot, words)
