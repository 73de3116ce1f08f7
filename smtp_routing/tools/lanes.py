"""Parallel SMTP connections ("lanes") for one queue run.

The queue run keeps everything that touches the database in its own thread:
claims, planning, reservations, building and preparing each message (DKIM
included), classifying results, the delivery log and commits. Only the socket
exchange of a message that is ready to go moves here:

- a :class:`Lane` is one SMTP connection and, unless it runs inline, one
  thread with a queue of :class:`Job`\\ s (plain values: mail id, envelope,
  flattened bytes). It sends them in order with
  :func:`smtp_routing.tools.pipelining.sendmail` (pipelined when the server
  offers it) and reports one :class:`Result` per job;
- a :class:`ServerLanes` holds the lanes of one server, one results queue and
  a *recall* switch: after a failure that makes the server unusable (anything
  :func:`smtp_routing.tools.smtp_errors.classified` marks for failover, or a
  connection gone), no lane of that server starts another job; those jobs come
  back *skipped*, never sent, for the caller to send elsewhere;
- after a permanent failure of one message of a mail, the lane skips the rest
  of that mail (as a sequential sender would stop at the exception), and the
  connection goes on with the next mail.

Every job of one mail goes to the same lane, so a mail's messages go in order.
Nothing here retries, reserves or decides: the caller settles every result.

Framework-free: standard library and this package's tools only.
"""

import queue
import smtplib
import threading
import time
from dataclasses import dataclass, field

from . import pipelining
from .smtp_errors import classified, refused_recipients

JOIN_SECONDS = 5.0
POLL_SECONDS = 1.0  # how often a wait for results checks that the lanes it waits for are alive


@dataclass
class Job:
    """One SMTP message, ready to go: plain values only."""

    mail_id: int
    from_addr: str
    to_addrs: list
    data: bytes
    mail_options: tuple = ()
    token: dict = field(default_factory=dict)  # the caller's bookkeeping, never read here


@dataclass
class Result:
    job: Job
    lane: int
    delivery: object = None  # pipelining.Delivery when the server took it
    error: BaseException | None = None
    # never attempted: "recalled" (the server failed: send it elsewhere), or "mail" (an earlier message of
    # the same mail failed for good: the mail fails)
    skipped: str = ""
    duration: float = 0.0

    @property
    def sent(self):
        return self.delivery is not None


def unusable(error):
    """Whether ``error`` makes the connection, or the whole server, unusable (fail over, stop the lanes)."""
    if refused_recipients(error) is not None:
        return False
    root = error
    if isinstance(root, smtplib.SMTPServerDisconnected) or isinstance(
        getattr(root, "__context__", None), smtplib.SMTPServerDisconnected
    ):
        return True
    return classified(error).failover  # classified once, here; the run reads the same Outcome


class Lane:
    """One connection. ``inline``: jobs run in the caller's thread as they are submitted (one connection)."""

    def __init__(self, index, session, owner, inline=False):
        self.index = index
        self.session = session
        self.owner = owner
        self.inline = inline
        self.failed_mails = set()
        self.broken = False
        self.outstanding = 0  # submitted and not yet collected (kept by the caller's thread)
        self._jobs = queue.SimpleQueue()
        self._thread = None
        if not inline:
            self._thread = threading.Thread(target=self._run, name=f"smtp_routing-lane-{index}", daemon=True)
            self._thread.start()

    def submit(self, job):
        self.outstanding += 1
        if self.inline:
            self.owner.results.put(self._execute(job))
        else:
            self._jobs.put(job)

    def _run(self):
        job = self._jobs.get()
        while job is not None:
            job = self._chain(job) if self._chainable(job) else self._single(job)
        self._quit()

    def _skip(self, job):
        """The reason not to start ``job`` ("recalled", "mail"), or ""."""
        if self.broken or self.owner.recalled.is_set():
            return "recalled"
        return "mail" if job.mail_id in self.failed_mails else ""

    def _failed(self, job, error, started):
        if refused_recipients(error) is None:
            self.failed_mails.add(job.mail_id)  # the rest of this mail is not sent (a permanent failure)
        if unusable(error):
            self.broken = True
            self.owner.recalled.set()
        return Result(job, self.index, error=error, duration=time.monotonic() - started)

    def _execute(self, job):
        skip = self._skip(job)
        if skip:
            return Result(job, self.index, skipped=skip)
        started = time.monotonic()
        try:
            delivery = pipelining.sendmail(self.session, job.from_addr, job.to_addrs, job.data, job.mail_options)
        except Exception as error:  # noqa: BLE001 - every failure is the caller's to settle
            return self._failed(job, error, started)
        return Result(job, self.index, delivery=delivery, duration=time.monotonic() - started)

    def _single(self, job):
        self.owner.results.put(self._execute(job))
        return self._jobs.get()

    def _chainable(self, job):
        smtp = pipelining.raw_smtp(self.session)
        return (
            not self._skip(job)
            and smtp.does_esmtp
            and smtp.has_extn("pipelining")
            and len(job.to_addrs) + 2 <= pipelining.WINDOW
        )

    def _chain(self, job):
        """Send ``job`` and, while the next jobs are already waiting, each one's MAIL FROM, RCPT TO and
        DATA in the same write as the content of the one before (RFC 2920 3.1): one round trip per
        message instead of two. Only jobs of another mail are chained (a mail's next message must not
        start before its previous one is known not to have failed). Returns the next job to run."""
        smtp = pipelining.raw_smtp(self.session)
        started = time.monotonic()
        try:
            options, commands = self._commands(smtp, job)
            pipelining.use_utf8_if_asked(smtp, options)
            recipients, trips = pipelining.open_transaction(smtp, job.from_addr, job.to_addrs, commands)
        except Exception as error:  # noqa: BLE001 - every failure is the caller's to settle
            self.owner.results.put(self._failed(job, error, started))
            return self._jobs.get()
        while True:  # job's transaction is open (354): its content goes now
            try:
                following, waiting = self._jobs.get_nowait(), True  # a job, or None: the lane is closing
            except queue.Empty:
                following, waiting = None, False
            chained = (
                following is not None
                and following.mail_id != job.mail_id
                and self._chainable(following)
                and not self._utf8(following)
            )
            next_commands = self._commands(smtp, following)[1] if chained else []
            try:
                smtp.send(pipelining.message_data(job.data) + "".join(next_commands).encode("ascii"))
                delivery = pipelining.finish_transaction(smtp, recipients, trips + 1, reset=not chained)
                result = Result(job, self.index, delivery=delivery, duration=time.monotonic() - started)
            except Exception as error:  # noqa: BLE001 - every failure is the caller's to settle
                result = self._failed(job, error, started)
            self.owner.results.put(result)
            if not chained:
                return following if waiting else self._jobs.get()
            if self.broken:  # the connection is gone or no longer trusted: the next message never started
                self.owner.results.put(Result(following, self.index, skipped="recalled"))
                return self._jobs.get()
            # a refused message ended its transaction; the next one's commands were read after it
            job, started = following, time.monotonic()
            try:
                recipients, trips = pipelining.open_transaction(
                    smtp, job.from_addr, job.to_addrs, next_commands, written=len(next_commands)
                )
            except Exception as error:  # noqa: BLE001
                self.owner.results.put(self._failed(job, error, started))
                return self._jobs.get()

    @staticmethod
    def _commands(smtp, job):
        return pipelining.transaction_commands(smtp, job.from_addr, job.to_addrs, job.data, job.mail_options)

    @staticmethod
    def _utf8(job):
        return any(option.lower() == "smtputf8" for option in job.mail_options)

    def _quit(self):
        smtp = pipelining.raw_smtp(self.session)
        try:
            if self.broken:
                smtp.close()
            else:
                smtp.quit()
        except Exception:  # noqa: BLE001, S110 - closing a connection we are done with
            try:
                smtp.close()
            except Exception:  # noqa: BLE001, S110  # pylint: disable=except-pass  # quit failed already: nothing to add
                pass

    def close(self):
        """Finish the queued jobs (or skip them after a recall), then QUIT. Returns without waiting."""
        if self.inline:
            self._quit()
        else:
            self._jobs.put(None)

    @property
    def alive(self):
        return self.inline or (self._thread is not None and self._thread.is_alive())

    def join(self, timeout):
        if self._thread is not None:
            self._thread.join(timeout)


class ServerLanes:
    """The lanes of one server for one queue run, and their results."""

    def __init__(self, first_session, limit, features=None):
        self.limit = max(int(limit or 1), 1)
        self.results = queue.SimpleQueue()
        self.recalled = threading.Event()
        self.lanes = []
        self.features = dict(features or {})
        self.from_filter = None  # Odoo's session attribute, kept for the sessions built on these lanes
        self.closed = False
        self.add(first_session)

    def add(self, session):
        inline = self.limit == 1
        lane = Lane(len(self.lanes), session, self, inline=inline)
        self.lanes.append(lane)
        return lane

    @property
    def full(self):
        return len(self.lanes) >= self.limit

    @property
    def outstanding(self):
        return sum(lane.outstanding for lane in self.lanes)

    def busy(self):
        """Every lane has work waiting: another connection would help."""
        return all(lane.outstanding > 0 for lane in self.lanes)

    def pick(self):
        """The lane for the next mail: the one with the least outstanding work (the first on a tie)."""
        live = [lane for lane in self.lanes if not lane.broken] or self.lanes
        return min(live, key=lambda lane: lane.outstanding)

    def recall(self):
        """No lane starts another job; what was queued comes back skipped."""
        self.recalled.set()

    def collect(self, block):
        """One result (or None): waits for it when ``block`` and work is outstanding."""
        if self.outstanding <= 0:
            return None
        while True:
            try:
                result = self.results.get(timeout=POLL_SECONDS) if block else self.results.get_nowait()
                break
            except queue.Empty:
                if not block:
                    return None
                if not any(lane.alive for lane in self.lanes if lane.outstanding):
                    raise RuntimeError("smtp_routing: a sending thread ended with messages in its hands") from None
        self.lanes[result.lane].outstanding -= 1
        return result

    def close(self, timeout=JOIN_SECONDS):
        """QUIT every connection once its jobs are done; wait at most ``timeout`` seconds in all."""
        if self.closed:
            return
        self.closed = True
        for lane in self.lanes:
            lane.close()
        deadline = time.monotonic() + timeout
        for lane in self.lanes:
            lane.join(max(deadline - time.monotonic(), 0.0))
