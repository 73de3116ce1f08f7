"""A loopback TCP proxy that adds network latency, for tests and the bench.

Real SMTP providers sit 20 to 100 ms away; a server on loopback answers in
microseconds, which hides every round trip a client waits for. Put this proxy
in front of a loopback server and each chunk of bytes it forwards is held for
``one_way`` seconds, in each direction::

    with SmtpServer(pipelining=True) as sink, LatencyProxy(sink.port, one_way=0.010) as proxy:
        smtplib.SMTP(proxy.host, proxy.port)  # 20 ms round trip to the sink
        ...
        proxy.round_trips  # how many times a client spoke after hearing from the server

Every chunk read from one side is scheduled for *its arrival time + one_way*
and written in order, so bytes written together (a pipelined burst of
commands) arrive together, one delay later: the delay is per chunk in flight,
never per byte or per line, and never cumulative. Bandwidth is not limited.

Bounded: one event-loop thread for the proxy and every connection it carries,
a time-out on connecting upstream, on every read (``idle_timeout``: a
connection silent both ways that long is closed) and on every write, and ``stop()``
closes everything and returns within a few seconds. Listens on 127.0.0.1 and
forwards to a loopback address only.

This module is framework-free: it never imports odoo.
"""

import asyncio
import ipaddress
import socket
import threading
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"
CHUNK = 65536
STOP_TIMEOUT = 5.0


@dataclass
class ConnectionStats:
    """What went through one proxied connection ("up": client to server, "down": server to client)."""

    chunks_up: int = 0
    chunks_down: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    round_trips: int = 0  # client flights: the first client chunk, then each one after the server spoke
    last_activity: float = 0.0  # event-loop time of the last chunk, either way
    _server_spoke: bool = True

    def count(self, direction, size, now):
        self.last_activity = now
        if direction == "up":
            self.chunks_up += 1
            self.bytes_up += size
            if self._server_spoke:
                self.round_trips += 1
                self._server_spoke = False
        else:
            self.chunks_down += 1
            self.bytes_down += size
            self._server_spoke = True


def _loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class LatencyProxy:
    """Forwards 127.0.0.1:``port`` to ``target_host:target_port``, ``one_way`` seconds late in each direction.

    :param target_port: the port of the server behind the proxy.
    :param one_way: seconds added in each direction (a round trip costs twice
        that); may be changed while running (applies to chunks read afterwards).
    :param target_host: a loopback address.
    :param idle_timeout: seconds a connection may stay silent (both ways) before
        the proxy closes it; also the bound on connecting upstream and on writes.
    """

    def __init__(self, target_port, one_way=0.0, target_host=LOOPBACK, idle_timeout=60.0):
        if not _loopback(target_host):
            raise ValueError(f"LatencyProxy forwards to loopback addresses only, not {target_host!r}")
        if one_way < 0:
            raise ValueError("one_way must be zero or more seconds")
        if idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive")
        self.target = (target_host, int(target_port))
        self.one_way = float(one_way)
        self.idle_timeout = float(idle_timeout)
        self.host = LOOPBACK
        self.port = None
        self.connections = []  # ConnectionStats, one per accepted connection
        self.refused_upstream = 0
        self._lock = threading.Lock()
        self._loop = None
        self._thread = None
        self._listener = None
        self._tasks = set()
        self._sockets = set()  # every accepted client socket, closed at the latest when the proxy stops
        self._closing = False

    # -- lifecycle ---------------------------------------------------------
    def start(self):
        if self._thread is not None:
            return self
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, 0))
        listener.listen(128)
        listener.setblocking(False)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._closing = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"latency-proxy-{self.port}", daemon=True)
        self._thread.start()
        return self

    def _run(self):
        loop = self._loop
        asyncio.set_event_loop(loop)
        accepting = loop.create_task(self._accept())
        try:
            loop.run_forever()
        finally:
            # the loop stopped: end what is left, close every socket, then the loop
            accepting.cancel()
            # every task of the loop, not only the connections': a connection's inner pumps (one waiting for
            # its next delivery) would otherwise stay pending and hold the stop for the whole time-out
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=STOP_TIMEOUT))
            for sock in [self._listener, *self._sockets]:
                sock.close()
            self._sockets.clear()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self):
        """Close the listener and every connection; returns within a few seconds."""
        if self._thread is None:
            return
        self._closing = True
        try:
            self._loop.call_soon_threadsafe(self._loop.stop)
        except RuntimeError:  # pylint: disable=except-pass  # the loop already closed: nothing left to stop
            pass
        self._thread.join(3 * STOP_TIMEOUT)
        self._thread = None
        self._loop = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- figures -----------------------------------------------------------
    @property
    def rtt(self):
        """The round trip the proxy adds, in seconds."""
        return 2 * self.one_way

    @property
    def round_trips(self):
        """Client flights over every connection: each made the client wait one round trip."""
        with self._lock:
            return sum(stats.round_trips for stats in self.connections)

    @property
    def chunks_up(self):
        with self._lock:
            return sum(stats.chunks_up for stats in self.connections)

    def reset_stats(self):
        """Zero every counter (to start a new measurement)."""
        with self._lock:
            for stats in self.connections:
                stats.chunks_up = stats.chunks_down = stats.bytes_up = stats.bytes_down = stats.round_trips = 0

    # -- the event loop's side ---------------------------------------------
    async def _accept(self):
        loop = asyncio.get_running_loop()
        while not self._closing:
            try:
                client, _address = await loop.sock_accept(self._listener)
            except OSError:
                await asyncio.sleep(0.01)  # e.g. too many open files: try again shortly
                continue
            self._sockets.add(client)
            task = loop.create_task(self._serve(client))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, client):
        upstream_writer = client_writer = None
        try:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client_reader, client_writer = await asyncio.open_connection(sock=client, limit=CHUNK)
            try:
                upstream_reader, upstream_writer = await asyncio.wait_for(
                    asyncio.open_connection(*self.target, limit=CHUNK), self.idle_timeout
                )
            except (OSError, asyncio.TimeoutError):
                with self._lock:
                    self.refused_upstream += 1
                return
            upstream_writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            stats = ConnectionStats(last_activity=asyncio.get_running_loop().time())
            with self._lock:
                self.connections.append(stats)
            await asyncio.gather(
                self._pump(client_reader, upstream_writer, "up", stats),
                self._pump(upstream_reader, client_writer, "down", stats),
            )
        except asyncio.CancelledError:  # pylint: disable=except-pass  # stop() cancels; the finally closes both ends
            pass
        finally:
            for writer in (client_writer, upstream_writer):
                if writer is not None:
                    writer.close()
            if client_writer is None:
                client.close()
            self._sockets.discard(client)

    async def _pump(self, reader, writer, direction, stats):
        """Copy one direction: each chunk is written at its arrival time + one_way, in order."""
        loop = asyncio.get_running_loop()
        in_flight = asyncio.Queue()

        async def receive():
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(CHUNK), self.idle_timeout)
                except asyncio.TimeoutError:
                    if loop.time() - stats.last_activity < self.idle_timeout:
                        continue  # this side is quiet, the other one is not (a long DATA): not idle
                    data = b""
                except OSError:
                    data = b""
                now = loop.time()
                due = now + self.one_way
                if data:
                    with self._lock:
                        stats.count(direction, len(data), now)
                in_flight.put_nowait((due, data))
                if not data:
                    return

        async def deliver():
            while True:
                due, data = await in_flight.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                try:
                    if not data:  # the sender closed (or went silent too long): pass the end on
                        if writer.can_write_eof():
                            writer.write_eof()
                        return
                    writer.write(data)
                    await asyncio.wait_for(writer.drain(), self.idle_timeout)
                except (OSError, asyncio.TimeoutError):
                    writer.close()
                    return

        tasks = [asyncio.ensure_future(receive()), asyncio.ensure_future(deliver())]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:  # one side failed or we are being stopped: the other side ends too
                task.cancel()
