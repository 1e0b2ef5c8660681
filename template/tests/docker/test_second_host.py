"""The second host (second_host.py) on its own, before a worker runs there: its network, how images
reach it, what it reaches on this host, and a cut off followed by the next start.

Traffic goes only to the addresses these tests create: the veth pair, the second host's containers, and
a network of the first engine made for the test.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import socket
import subprocess
import time
from pathlib import Path

import pytest

from template.tests.docker.conftest import say
from template.tests.docker.engine import DockerEngine
from template.tests.docker.project import PREFIX
from template.tests.docker.second_host import DATA_ROOT, RUN_DIR, VETH, SecondHost, used_networks

pytestmark = pytest.mark.docker

# The smallest image of the stack that has a TCP server and its client (redis-server, redis-cli), on
# Debian as the others, so bash's /dev/tcp too.
IMAGE = "redis:7.2-bookworm"
CONNECT_TIMEOUT = 3  # seconds, for each probe
NO_ANSWER = f"no answer in {CONNECT_TIMEOUT} s"


@pytest.fixture(autouse=True)
def running_second_host(second_host: SecondHost) -> None:
    """A test of the stack may have cut the second host off and left it so: each test here starts
    from a running one (booted again as the next run would, which clears what the cut off left)."""
    if not second_host.running:
        second_host.boot()


def test_the_second_host_owns_its_subnet_and_has_no_route_beyond_this_hosts_end(second_host: SecondHost):
    subnet = second_host.subnet
    # On this host, the subnet holds only what the second host put there: the veth's address and
    # route, and the `unreachable` route of the whole subnet.
    ours = [network for network in used_networks() if network.overlaps(subnet.network)]
    assert subnet.network in ours, "no unreachable route for the subnet"
    assert any(network == subnet.veth for network in ours), "this host's end of the veth has no address"
    assert all(network == subnet.network or network.subnet_of(subnet.veth) for network in ours), ours
    # There: the veth's /30 and its engine's bridge, in the same subnet; no default route, nothing else.
    routes = {route["dst"] for route in second_host.routes()}
    assert routes == {str(subnet.veth), str(ipaddress.ip_interface(subnet.bridge).network)}, routes


def test_an_image_reaches_the_second_host_by_save_and_load_once(
    engine: DockerEngine, second_host: SecondHost, base_images
):
    assert IMAGE in {image.name for image in base_images}
    second_host.engine.docker("image", "rm", "--force", IMAGE, check=False)  # a load, not the last run's
    loaded = second_host.load(engine, IMAGE)
    say(f"second host: {loaded}")
    assert "docker save | docker load" in loaded
    engines = (engine, second_host.engine)
    first, second = (e.docker("image", "inspect", "--format", "{{.Id}}", IMAGE).stdout for e in engines)
    assert first == second
    assert second_host.load(engine, IMAGE) == f"{IMAGE}: on the second host already"  # no docker save


def test_a_process_joined_to_the_second_host_reaches_this_host_at_the_veth_address_only(
    second_host: SecondHost,
):
    """What the stack's probes use (SecondHost.inside): a server of this host on the veth address
    answers, and sees the connection come from the second host's address; 127.0.0.1 there is the
    second host's own, where this host's loopback server is out of reach."""
    with socket.socket() as server:
        server.bind((second_host.first_address, 0))
        server.listen()

        def connect(port: int) -> str:
            with socket.create_connection(
                (second_host.first_address, port), timeout=CONNECT_TIMEOUT
            ) as client:
                return client.getsockname()[0]

        source = second_host.inside(connect, server.getsockname()[1])
        accepted, (peer, _) = server.accept()
        accepted.close()
    assert source == peer == second_host.second_address
    with socket.socket() as loopback_server:
        loopback_server.bind(("127.0.0.1", 0))
        loopback_server.listen()
        with pytest.raises(ConnectionRefusedError):
            second_host.inside(socket.create_connection, loopback_server.getsockname(), CONNECT_TIMEOUT)


def test_a_container_there_reaches_what_this_host_publishes_on_the_veth_and_nothing_else(
    engine: DockerEngine, second_host: SecondHost
):
    """A server on the first engine, on a network of its own, published on this host's veth address
    and on 127.0.0.1. From a container of the second host only the first answers, and it sees the
    second host's address; the loopback port, the server's own address and the first engine's
    gateway are out of reach."""
    second_host.load(engine, IMAGE)
    name = f"{PREFIX}second-host-{secrets.token_hex(3)}"
    # Labelled as a compose project of these runs: if this run is killed, the next one removes them.
    label = f"com.docker.compose.project={name}"
    engine.docker("network", "create", "--label", label, name)
    try:
        veth_port, loopback_port = free_port(second_host.first_address), free_port("127.0.0.1")
        engine.docker(
            "run",
            "--detach",
            "--name",
            name,
            "--label",
            label,
            "--network",
            name,
            "--publish",
            f"{second_host.first_address}:{veth_port}:6379",
            "--publish",
            f"127.0.0.1:{loopback_port}:6379",
            IMAGE,
        )
        network = json.loads(engine.docker("network", "inspect", name).stdout)[0]
        gateway = network["IPAM"]["Config"][0]["Gateway"]
        server = engine.docker(
            "inspect", "--format", f'{{{{(index .NetworkSettings.Networks "{name}").IPAddress}}}}', name
        ).stdout.strip()
        wait_for_port("127.0.0.1", loopback_port)
        targets = {
            "the veth address, published port": (second_host.first_address, veth_port),
            "the veth address, port published on 127.0.0.1": (second_host.first_address, loopback_port),
            "the server's own address": (server, 6379),
            "the first engine's gateway": (gateway, veth_port),
        }
        answers = probe_from_a_container(second_host, targets)
    finally:
        engine.docker("rm", "--force", name, check=False)
        engine.docker("network", "rm", name, check=False)
    for target, answer in answers.items():
        say(f"from a container of the second host to {target} {targets[target]}: {answer}")
    # The server saw the connection come from the second host's own address.
    assert answers["the veth address, published port"].startswith(
        f"connected from addr={second_host.second_address}:"
    ), answers
    assert answers["the veth address, port published on 127.0.0.1"] == "Connection refused", answers
    # No route there (the kernel rate-limits its "unreachable" answers: a second one may never come).
    for target in ("the server's own address", "the first engine's gateway"):
        assert answers[target] in ("Network is unreachable", NO_ANSWER), answers


def probe_from_a_container(second_host: SecondHost, targets: dict[str, tuple[str, int]]) -> dict[str, str]:
    """`redis-cli client info` to each target from one container of the second host: what came of it."""
    client = f"timeout {CONNECT_TIMEOUT} redis-cli"
    lines = [
        f"answer=$({client} -h {host} -p {port} client info 2>&1 | head -1)\n"
        f'echo "{name}|${{answer:-{NO_ANSWER}}}"'
        for name, (host, port) in targets.items()
    ]
    output = second_host.engine.docker("run", "--rm", IMAGE, "bash", "-c", "\n".join(lines)).stdout
    answers = (line.split("|", 1) for line in output.splitlines() if "|" in line)
    return {name: _short(answer) for name, answer in answers}


def _short(answer: str) -> str:
    """`client info`'s line -> "connected from addr=HOST:PORT" (the client as the server saw it);
    "Could not connect to Redis at HOST:PORT: Connection refused" -> "Connection refused"."""
    if match := re.search(r"\baddr=(\S+)", answer):
        return f"connected from addr={match[1]}"
    return answer.rpartition(": ")[2] if answer.startswith("Could not connect") else answer


def test_a_cut_off_leaves_nothing_running_and_the_next_start_clears_what_is_left(second_host: SecondHost):
    container = second_host.engine.docker("run", "--detach", "--restart", "always", IMAGE).stdout.strip()
    pid = int(second_host.engine.docker("inspect", "--format", "{{.State.Pid}}", container).stdout)
    processes = second_host.processes()
    assert {pid, second_host.dockerd.pid} <= processes
    second_host.cut_off()
    survivors = [p for p in processes if Path(f"/proc/{p}").exists() and not _zombie(p)]
    assert not survivors, f"still running after the cut off: {survivors}"
    assert second_host.engine.docker("info", check=False).returncode != 0, "its engine still answers"
    # Its address answers nothing either: what this host sends there goes into the dead veth, nowhere else.
    (route,) = json.loads(
        subprocess.run(
            ["ip", "-json", "route", "get", second_host.second_address],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert route["dev"] == VETH, route
    with socket.socket() as probe:
        probe.settimeout(5)
        assert probe.connect_ex((second_host.second_address, 6379)) != 0
    left = mounts_below(RUN_DIR) + mounts_below(DATA_ROOT)
    say(f"second host cut off: {len(processes)} processes killed, {len(left)} mounts left behind")
    # What the next run does first: clear it all, from names on disk alone, and start afresh.
    started = time.monotonic()
    second_host.boot()
    say(f"second host started again in {time.monotonic() - started:.1f} s")
    assert second_host.engine.docker("ps", "--all", "--quiet").stdout.split() == []
    assert not set(mounts_below(RUN_DIR) + mounts_below(DATA_ROOT)) & set(left)
    assert second_host.processes().isdisjoint(processes)


def mounts_below(folder: Path) -> list[str]:
    prefix = f"{folder}/"
    with open("/proc/mounts") as mounts:
        return [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


def free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def wait_for_port(address: str, port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as sock:
            sock.settimeout(2)
            if sock.connect_ex((address, port)) == 0:
                return
        assert time.monotonic() < deadline, f"nothing answers on {address}:{port}"
        time.sleep(0.3)
