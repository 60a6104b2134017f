"""`serve`'s listening sockets: one per worker on one port; a port already taken is refused."""

from __future__ import annotations

import socket

import pytest

from fraudstream.api.server import ListenError, _listen, _listen_per_worker


def test_each_worker_gets_its_own_socket_on_the_one_port_and_connections_spread() -> None:
    slots = _listen_per_worker("127.0.0.1", 0, 2)
    try:
        ports = {s.getsockname()[1] for s in slots}
        assert len(ports) == 1
        assert len({s.fileno() for s in slots}) == 2
        (port,) = ports
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(64)]
        try:
            # Every connection waits in exactly one slot's queue; the kernel spreads them.
            accepted = []
            for slot in slots:
                slot.setblocking(False)
                count = 0
                while True:
                    try:
                        conn, _ = slot.accept()
                    except BlockingIOError:
                        break
                    conn.close()
                    count += 1
                accepted.append(count)
            assert sum(accepted) == 64
            assert min(accepted) >= 8, accepted
        finally:
            for client in clients:
                client.close()
    finally:
        for slot in slots:
            slot.close()


def test_a_port_another_server_listens_on_is_refused_even_one_sharing_it() -> None:
    plain = _listen("127.0.0.1", 0)
    shared = _listen_per_worker("127.0.0.1", 0, 2)
    try:
        for taken in (plain.getsockname()[1], shared[0].getsockname()[1]):
            with pytest.raises(ListenError, match=f"cannot listen on 127.0.0.1:{taken}"):
                _listen_per_worker("127.0.0.1", taken, 2)
    finally:
        for s in (plain, *shared):
            s.close()


def test_accepted_connections_send_small_writes_at_once() -> None:
    """asyncio turns Nagle off (TCP_NODELAY) only for sockets that name IPPROTO_TCP; without
    it a two-part response on a reused connection waited ~40 ms for a delayed ACK."""
    listener = _listen("127.0.0.1", 0)
    try:
        client = socket.create_connection(listener.getsockname(), timeout=5)
        try:
            conn, _ = listener.accept()
            with conn:
                assert conn.proto == socket.IPPROTO_TCP
                assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            client.close()
    finally:
        listener.close()
