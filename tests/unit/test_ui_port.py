"""make ui's free-port check answers as the api-server's own bind would (no server is started)."""

from __future__ import annotations

import socket

from scripts.ui import port_is_free


def leave_time_wait_behind() -> int:
    """A port whose server closed a connection first and stopped listening: the server side of
    that connection stays in TIME_WAIT for a minute, as after `make test-docker` or an earlier make ui.
    That server set SO_REUSEADDR, as docker-proxy and uvicorn do: Linux lets a new bind share the port
    with a TIME_WAIT socket only when both set it."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            accepted.close()  # the server closes first: its end goes to TIME_WAIT
            client.recv(1)  # sees the close
    return port


def test_a_port_left_in_time_wait_is_free():
    port = leave_time_wait_behind()
    with socket.socket() as plain:  # what the old check did, and why it said "in use"
        try:
            plain.bind(("127.0.0.1", port))
            bound_without_reuse = True
        except OSError:
            bound_without_reuse = False
    assert not bound_without_reuse, "no TIME_WAIT socket was left behind: the test proves nothing"
    assert port_is_free(port)


def test_a_port_someone_listens_on_is_not_free():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert not port_is_free(server.getsockname()[1])
