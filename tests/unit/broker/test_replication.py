"""How many replicas a revocation waits for, read from what Sentinel and Cluster report;
what counts as a lost Redis connection."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio.connection import Connection

from broker.errors import StoreUnavailable
from broker.replication import parse_cluster_nodes, replicas_listed
from broker.sentinel import GONE_AFTER_S, Replica, SentinelView, lost_connection
from broker.store import guard

pytestmark = pytest.mark.unit

# CLUSTER NODES as node b (127.0.0.1:7001) answers it after it took over a's slots: a is a
# failed primary without slots, c is b's replica, d is another primary, e d's replica.
NODES = """\
aaa 127.0.0.1:7000@17000 master,fail - 1700000000000 1700000000000 1 disconnected
bbb 127.0.0.1:7001@17001 myself,master - 0 1700000000000 7 connected 0-8191
ccc 127.0.0.1:7002@17002 slave bbb 0 1700000000000 7 connected
ddd 127.0.0.1:7003@17003 master - 0 1700000000000 2 connected 8192-16383
eee 127.0.0.1:7004@17004 slave,fail ddd 0 1700000000000 2 disconnected
"""


def test_cluster_nodes_are_parsed_with_flags_master_and_slots() -> None:
    nodes = {n.id: n for n in parse_cluster_nodes(NODES)}
    assert nodes["aaa"].flags == {"master", "fail"} and not nodes["aaa"].slots
    assert nodes["bbb"].address == "127.0.0.1:7001" and nodes["bbb"].slots
    assert nodes["ccc"].master == "bbb" and "slave" in nodes["ccc"].flags
    assert nodes["eee"].master == "ddd" and "fail" in nodes["eee"].flags


def test_a_cluster_primary_counts_its_own_replicas_failing_ones_included() -> None:
    assert replicas_listed(NODES) == 1  # as b: only c
    as_d = NODES.replace("myself,master", "master").replace(
        "ddd 127.0.0.1:7003@17003 master", "ddd 127.0.0.1:7003@17003 myself,master"
    )
    assert replicas_listed(as_d) == 1  # e, although failing
    assert replicas_listed("") == 0


def test_sentinel_waits_for_replicas_down_until_they_are_gone() -> None:
    view = SentinelView(
        ("10.0.0.1", 6379),
        (
            Replica("10.0.0.2", 6379, 0.0),  # up
            Replica("10.0.0.3", 6379, 2.5),  # down a moment: paused, restarting
            Replica("10.0.0.4", 6379, GONE_AFTER_S),  # down for good
        ),
    )
    assert view.waited == 2


async def _fail_inside_guard(exc: BaseException) -> None:
    async with guard("checking revocation"):
        raise exc


def test_a_write_on_a_transport_uvloop_closed_is_a_store_failure_not_a_crash() -> None:
    # What uvloop raised from redis-py when a cluster node died under `vouch-broker serve`
    # (the soak's 500s, and a dead signing-key refresher): the connection is lost.
    closed = RuntimeError(
        "unable to perform operation on <TCPTransport closed=True reading=False 0x55>;"
        " the handler is closed"
    )
    assert lost_connection(closed)
    with pytest.raises(StoreUnavailable, match="while checking revocation; nothing was"):
        asyncio.run(_fail_inside_guard(closed))
    with pytest.raises(RuntimeError, match="a bug"):  # any other RuntimeError stays a bug
        asyncio.run(_fail_inside_guard(RuntimeError("a bug")))


def test_a_connection_closed_under_its_command_is_a_store_failure_not_a_crash() -> None:
    """redis-py's own code on a connection another task closed (its cluster client does it
    when it refreshes the slot map): the AttributeError is a lost connection, one raised
    anywhere else stays a bug."""

    async def closed_under_command() -> None:
        connection = Connection(host="127.0.0.1", port=1)  # never connected: no writer
        async with guard("checking revocation"):
            await connection._send_packed_command([b"PING"])

    with pytest.raises(StoreUnavailable, match="while checking revocation"):
        asyncio.run(closed_under_command())
    with pytest.raises(AttributeError):
        asyncio.run(_fail_inside_guard(AttributeError("'NoneType' object has no attribute")))
