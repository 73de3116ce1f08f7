"""The bench's own pieces that need no Odoo: the latency plan and the raw-SMTP physical limit."""

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import bench  # noqa: E402

from smtp_routing.testing.latency import LatencyProxy  # noqa: E402
from smtp_routing.testing.smtpd import SmtpServer  # noqa: E402


def _plan(latency_ms="0,20,50", latency_mails=""):
    return bench._latency_plan(argparse.Namespace(latency_ms=latency_ms, latency_mails=latency_mails))


def test_latency_plan():
    assert _plan() == [(0, 500), (20, 300), (50, 100)]
    assert _plan("10,100") == [(10, 300), (100, 100)]
    assert _plan("0,20", "50,20") == [(0, 50), (20, 20)]
    assert _plan("none") == []
    with pytest.raises(SystemExit, match="one --latency-mails figure per"):
        _plan("0,20", "50")
    with pytest.raises(SystemExit, match="whole numbers"):
        _plan("fast")
    with pytest.raises(SystemExit, match="negative"):
        _plan("-20")


def test_the_physical_limit_shows_what_pipelining_and_connections_buy():
    with SmtpServer(pipelining=True) as sink, LatencyProxy(sink.port, one_way=0.010) as proxy:
        sequential = bench.physical_limit(proxy.host, proxy.port, 1.0, pipelined=False)
        pipelined = bench.physical_limit(proxy.host, proxy.port, 1.0, pipelined=True)
        parallel = bench.physical_limit(proxy.host, proxy.port, 1.0, pipelined=True, connections=4)
        assert sink.messages, "nothing was delivered"
    # 20 ms round trip: four per message one command at a time, two pipelined, and four connections at once
    assert sequential < 1 / (4 * 0.020) + 1
    assert pipelined > 1.5 * sequential
    assert parallel > 2.5 * pipelined
