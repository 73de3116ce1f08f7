"""Lanes (smtp_routing.tools.lanes) against real loopback servers: parallel connections, order per mail,
recall after a server failure, a mail's rest skipped after its permanent failure."""

import smtplib

from smtp_routing.testing.latency import LatencyProxy
from smtp_routing.testing.smtpd import SmtpServer
from smtp_routing.tools import lanes, pipelining

TIMEOUT = 5


def _connect(port):
    client = smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT)
    client.ehlo()
    return client


def _job(mail_id, index, to=None):
    data = f"From: a@x.example\r\nTo: b@y.example\r\nSubject: mail {mail_id} part {index}\r\n\r\nHello\r\n".encode()
    return lanes.Job(mail_id, "a@x.example", [to or f"r{mail_id}-{index}@y.example"], data, token={"i": index})


def _drain(pool):
    results = []
    while pool.outstanding:
        results.append(pool.collect(block=True))
    return results


def test_jobs_run_in_parallel_on_every_lane_and_each_mail_in_order():
    with SmtpServer(pipelining=True) as server, LatencyProxy(server.port, one_way=0.01) as proxy:
        pool = lanes.ServerLanes(_connect(proxy.port), limit=3)
        pool.add(_connect(proxy.port))
        pool.add(_connect(proxy.port))
        for mail_id in range(9):
            lane = pool.lanes[mail_id % 3]
            for index in range(2):
                lane.submit(_job(mail_id, index))
        results = _drain(pool)
        pool.close()
        assert len(results) == 18 and all(result.sent for result in results)
        assert all(result.delivery.pipelined for result in results)
        assert server.peak_connections == 3
        subjects = [received.message["Subject"] for received in server.messages]
        for mail_id in range(9):  # a mail's parts arrive in order (same lane)
            assert subjects.index(f"mail {mail_id} part 0") < subjects.index(f"mail {mail_id} part 1")


def test_a_server_failure_recalls_every_lane_and_nothing_is_sent_twice():
    with SmtpServer(pipelining=True, delay=0.05) as server:
        server.add_fault("RCPT", reply="421 4.7.0 Closing", match="r2-0@", times=1)
        pool = lanes.ServerLanes(_connect(server.port), limit=2)
        pool.add(_connect(server.port))
        for mail_id in range(12):
            pool.lanes[mail_id % 2].submit(_job(mail_id, 0))
        results = _drain(pool)
        pool.close()
        failed = [result for result in results if result.error is not None]
        assert len(failed) == 1 and failed[0].job.mail_id == 2
        assert lanes.unusable(failed[0].error)
        assert pool.recalled.is_set()
        skipped = {result.job.mail_id for result in results if result.skipped == "recalled"}
        sent = {result.job.mail_id for result in results if result.sent}
        assert skipped and not skipped & sent
        assert sent | skipped | {2} == set(range(12))
        assert sorted(rcpt for rcpt in server.recipients) == sorted(f"r{mail_id}-0@y.example" for mail_id in sent)


def test_a_permanent_failure_skips_the_rest_of_that_mail_only():
    with SmtpServer(pipelining=True) as server:
        server.add_fault("MESSAGE", reply="554 5.6.0 Refused", match="mail 1 part 0")
        pool = lanes.ServerLanes(_connect(server.port), limit=1)  # inline: one connection
        for mail_id in range(3):
            for index in range(2):
                pool.lanes[0].submit(_job(mail_id, index))
        results = _drain(pool)
        pool.close()
        outcome = [(r.job.mail_id, r.job.token["i"], r.sent, r.skipped) for r in results]
        assert outcome == [
            (0, 0, True, ""),
            (0, 1, True, ""),
            (1, 0, False, ""),
            (1, 1, False, "mail"),
            (2, 0, True, ""),
            (2, 1, True, ""),
        ]
        assert not pool.recalled.is_set()
        assert isinstance(results[2].error, smtplib.SMTPDataError)


def test_refused_recipients_neither_break_the_lane_nor_skip_the_mail():
    with SmtpServer(pipelining=True) as server:
        server.add_fault("RCPT", reply="450 4.2.0 Greylisted", match="grey@")
        pool = lanes.ServerLanes(_connect(server.port), limit=2)
        pool.lanes[0].submit(_job(1, 0, to="grey@y.example"))
        pool.lanes[0].submit(_job(1, 1))
        results = _drain(pool)
        pool.close()
        assert isinstance(results[0].error, smtplib.SMTPRecipientsRefused)
        assert not lanes.unusable(results[0].error)
        assert results[1].sent and not pool.recalled.is_set()


def test_flatten_is_what_send_message_sends():
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = "a@x.example"
    msg["To"] = "b@y.example"
    msg["Bcc"] = "hidden@y.example"
    msg["Subject"] = "Flat"
    msg.set_content("Hello\n.dot line\n")
    from_addr, to_addrs, data, options = pipelining.flatten(msg)
    assert (from_addr, to_addrs, options) == ("a@x.example", ["b@y.example", "hidden@y.example"], ())
    assert b"Bcc" not in data and msg["Bcc"]
    with SmtpServer() as server:
        client = _connect(server.port)
        pipelining.send_message(client, msg)
        client.quit()
        assert server.wait_for(1)
        assert server.messages[0].content.replace(b"\r\n", b"\n") == data.replace(b"\r\n", b"\n")


def _threaded_pool(port, jobs):
    """One threaded lane (limit 2) with every job queued before it starts sending."""
    pool = lanes.ServerLanes(_connect(port), limit=2)
    lane = pool.lanes[0]
    for job in jobs:
        lane.outstanding += 1
        lane._jobs.put(job)
    return pool


def test_waiting_messages_are_chained_one_round_trip_each():
    with SmtpServer(pipelining=True) as server, LatencyProxy(server.port, one_way=0.005) as proxy:
        client = _connect(proxy.port)
        proxy.reset_stats()
        pool = lanes.ServerLanes(client, limit=2)
        gate = lanes.Job(0, "a@x.example", ["r0-0@y.example"], b"Subject: mail 0\r\n\r\nx\r\n")
        pool.lanes[0].submit(gate)
        for mail_id in range(1, 11):
            pool.lanes[0].submit(_job(mail_id, 0))
        results = _drain(pool)
        trips = proxy.round_trips
        pool.close()
        assert [r.job.mail_id for r in results] == list(range(11)) and all(r.sent for r in results)
        # 11 messages: the first costs two round trips, each chained one only one more
        assert trips <= 11 + 3, trips
        assert len(server.messages) == 11


def test_a_refused_message_in_a_chain_does_not_stop_the_next():
    with SmtpServer(pipelining=True) as server:
        server.add_fault("MESSAGE", reply="554 5.6.0 Refused", match="mail 3 part 0")
        pool = _threaded_pool(server.port, [_job(mail_id, 0) for mail_id in range(6)])
        results = _drain(pool)
        pool.close()
        assert [(r.job.mail_id, r.sent) for r in results] == [(i, i != 3) for i in range(6)]
        assert isinstance(results[3].error, smtplib.SMTPDataError) and results[3].error.smtp_code == 554
        assert not pool.recalled.is_set()
        assert sorted(server.recipients) == sorted(f"r{i}-0@y.example" for i in range(6) if i != 3)


def test_a_closing_reply_in_a_chain_never_delivers_the_next_message():
    with SmtpServer(pipelining=True) as server:
        server.add_fault("MESSAGE", reply="421 4.3.2 Closing", match="mail 2 part 0")
        pool = _threaded_pool(server.port, [_job(mail_id, 0) for mail_id in range(6)])
        results = _drain(pool)
        pool.close()
        by_mail = {r.job.mail_id: r for r in results}
        assert [by_mail[i].sent for i in (0, 1)] == [True, True]
        assert by_mail[2].error is not None and lanes.unusable(by_mail[2].error)
        assert all(by_mail[i].skipped == "recalled" for i in (3, 4, 5))
        assert sorted(server.recipients) == ["r0-0@y.example", "r1-0@y.example"]


def test_the_next_message_of_the_same_mail_is_not_chained():
    with SmtpServer(pipelining=True) as server:
        server.add_fault("MESSAGE", reply="554 5.6.0 Refused", match="mail 1 part 0")
        pool = _threaded_pool(server.port, [_job(1, 0), _job(1, 1), _job(2, 0)])
        results = _drain(pool)
        pool.close()
        assert [(r.job.mail_id, r.sent, r.skipped) for r in results] == [
            (1, False, ""),
            (1, False, "mail"),
            (2, True, ""),
        ]
        assert server.recipients == ["r2-0@y.example"]


def test_closing_while_a_message_is_in_flight_ends_the_lane_once_it_is_done():
    """The lane looks for a next job to chain once the message is out: the close request is not one."""
    with SmtpServer(pipelining=True, delay=0.1) as server:
        pool = lanes.ServerLanes(_connect(server.port), limit=2)
        pool.lanes[0].submit(_job(1, 0))
        pool.close(timeout=3.0)
        assert not pool.lanes[0].alive, "the lane did not end"
        assert pool.collect(block=False).sent
