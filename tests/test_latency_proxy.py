"""The latency proxy adds a round trip where a real network would, and nowhere else.

Timings are asserted with generous upper bounds (the machine is shared); the
lower bounds are exact, since the proxy never delivers a chunk early. The
proxy's own counters say how many round trips a client waited for.
"""

import random
import smtplib
import socket
import socketserver
import threading
import time

import pytest

from smtp_routing.testing.latency import LatencyProxy
from smtp_routing.testing.smtpd import SmtpServer, closed_port

ONE_WAY = 0.05  # 100 ms round trip
TIMEOUT = 5


class _Echo(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.settimeout(TIMEOUT)
        while True:
            try:
                data = self.request.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.request.sendall(data)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def echo():
    server = _EchoServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


def _connect(proxy):
    sock = socket.create_connection((proxy.host, proxy.port), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_exactly(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_a_round_trip_costs_twice_the_one_way_delay(echo):
    with LatencyProxy(echo, one_way=ONE_WAY) as proxy, _connect(proxy) as sock:
        durations = []
        for _ in range(3):
            started = time.perf_counter()
            sock.sendall(b"PING\r\n")
            assert _read_exactly(sock, 6) == b"PING\r\n"
            durations.append(time.perf_counter() - started)
        assert proxy.round_trips == 3
    assert min(durations) >= 2 * ONE_WAY
    assert max(durations) < 2 * ONE_WAY + 0.25


def test_without_delay_the_proxy_is_transparent(echo):
    with LatencyProxy(echo) as proxy, _connect(proxy) as sock:
        started = time.perf_counter()
        for _ in range(20):
            sock.sendall(b"x\r\n")
            assert _read_exactly(sock, 3) == b"x\r\n"
        assert time.perf_counter() - started < 1.0
        assert proxy.round_trips == 20


def test_a_burst_of_pipelined_lines_costs_one_round_trip_not_one_per_line(echo):
    lines = [b"RCPT TO:<client%02d@clients.example>\r\n" % i for i in range(20)]
    burst = b"".join(lines)
    with LatencyProxy(echo, one_way=ONE_WAY) as proxy, _connect(proxy) as sock:
        started = time.perf_counter()
        sock.sendall(burst)
        assert _read_exactly(sock, len(burst)) == burst
        pipelined = time.perf_counter() - started
        assert proxy.round_trips == 1

        proxy.reset_stats()
        started = time.perf_counter()
        for line in lines[:5]:
            sock.sendall(line)
            assert _read_exactly(sock, len(line)) == line
        one_by_one = time.perf_counter() - started
        assert proxy.round_trips == 5
    assert 2 * ONE_WAY <= pipelined < 2 * ONE_WAY + 0.25
    assert one_by_one >= 5 * 2 * ONE_WAY  # every line waited for its answer


def test_chunks_sent_back_to_back_are_not_delayed_cumulatively(echo):
    """Ten writes 10 ms apart all arrive one delay after they left: delays overlap, they never add up."""
    with LatencyProxy(echo, one_way=ONE_WAY) as proxy, _connect(proxy) as sock:
        started = time.perf_counter()
        for i in range(10):
            sock.sendall(b"%d\r\n" % i)
            time.sleep(0.01)
        expected = b"".join(b"%d\r\n" % i for i in range(10))
        assert _read_exactly(sock, len(expected)) == expected
        elapsed = time.perf_counter() - started
        assert proxy.chunks_up >= 2
    assert elapsed < 0.1 + 2 * ONE_WAY + 0.25  # not 10 x the delay


def test_order_and_content_survive_many_small_and_large_chunks(echo):
    rng = random.Random(17)
    payload = bytes(rng.getrandbits(8) for _ in range(300_000))
    with LatencyProxy(echo, one_way=0.002) as proxy, _connect(proxy) as sock:
        received = bytearray()
        position = 0

        def reader():
            while len(received) < len(payload):
                chunk = sock.recv(65536)
                if not chunk:
                    return
                received.extend(chunk)

        thread = threading.Thread(target=reader)
        thread.start()
        while position < len(payload):
            size = rng.choice((1, 7, 100, 1500, 40_000))
            sock.sendall(payload[position : position + size])
            position += size
        thread.join(TIMEOUT * 2)
        assert bytes(received) == payload
        assert proxy.connections[0].bytes_up == proxy.connections[0].bytes_down == len(payload)


def test_smtp_through_the_proxy_pays_the_round_trips():
    with SmtpServer() as sink, LatencyProxy(sink.port, one_way=0.02) as proxy:
        started = time.perf_counter()
        with smtplib.SMTP(proxy.host, proxy.port, timeout=TIMEOUT) as client:
            client.sendmail("office@practice.example", ["client@clients.example"], b"Subject: hi\r\n\r\nhello\r\n")
        elapsed = time.perf_counter() - started
        assert sink.wait_for(1)
        # EHLO, MAIL, RCPT, DATA, the message, QUIT: six flights, each waiting for the reply
        assert proxy.round_trips == 6
    assert elapsed >= 6 * 0.04


def test_the_end_of_a_connection_is_passed_on_both_ways(echo):
    with LatencyProxy(echo, one_way=0.01) as proxy:
        sock = _connect(proxy)
        sock.sendall(b"bye\r\n")
        sock.shutdown(socket.SHUT_WR)
        assert _read_exactly(sock, 5) == b"bye\r\n"
        assert sock.recv(10) == b""  # the echo server closed after our end: the close came through
        sock.close()


def test_an_idle_connection_is_closed():
    with SmtpServer() as sink, LatencyProxy(sink.port, idle_timeout=0.3) as proxy, _connect(proxy) as sock:
        assert sock.recv(1024).startswith(b"220")
        started = time.perf_counter()
        assert sock.recv(1024) == b""  # nobody spoke for 0.3 s: the proxy closed
        assert time.perf_counter() - started < 3


def test_a_refused_upstream_closes_the_client_connection():
    with LatencyProxy(closed_port(), one_way=0.01) as proxy, _connect(proxy) as sock:
        assert sock.recv(10) == b""
        assert proxy.refused_upstream == 1


def test_stop_ends_open_connections_and_returns_promptly(echo):
    proxy = LatencyProxy(echo, one_way=ONE_WAY).start()
    sock = _connect(proxy)
    sock.sendall(b"hello\r\n")
    started = time.perf_counter()
    proxy.stop()
    assert time.perf_counter() - started < 3
    sock.settimeout(TIMEOUT)
    try:
        assert sock.recv(100) in (b"", b"hello\r\n")  # closed (the echo may have made it first)
    except ConnectionResetError:
        pass
    sock.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((proxy.host, proxy.port), timeout=TIMEOUT)


def test_only_loopback_targets_and_sane_values():
    with pytest.raises(ValueError, match="loopback"):
        LatencyProxy(25, target_host="192.0.2.10")
    with pytest.raises(ValueError):
        LatencyProxy(25, one_way=-0.01)
    with pytest.raises(ValueError):
        LatencyProxy(25, idle_timeout=0)
    assert LatencyProxy(25, one_way=0.01).rtt == pytest.approx(0.02)
