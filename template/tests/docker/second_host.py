"""A second host for `make test-docker`: a network namespace of its own, with a Docker engine in it.

What a second machine beside this one would be, on this one machine:
- **Its network**: a network namespace (`ip netns`) joined to this host by a veth pair. This host's end
  (VETH) has `first_address`, the namespace's end (`eth0` there) `second_address`, in a small private
  subnet that nothing on this machine uses (checked: its addresses, routes and nameservers). The
  namespace has no default route: from it only this host's end of the veth answers, nothing beyond.
- **Its engine**: a dockerd started in that namespace (`nsenter --net`: only the network is its own,
  the files are this machine's), with its own socket, pidfile, exec-root and bridge, and the networks
  of its containers in the same subnet. Its data-root sits beside the first engine's in the cache, so
  the images it was given stay for the next run.
- **Images** arrive as from a registry that is not there: `docker save` on the first engine piped into
  `docker load` on this one, skipped when it holds that image id already.
- **Cut off**: its network card dead (its end of the veth down) and every process of it SIGKILLed at
  once (dockerd, containerd, the shims, the containers' processes): as a machine that loses power,
  nothing is stopped and no connection is closed. `stop()`, and the start of the next run, remove
  what that leaves (processes, the namespace and the veth, mounts), from names on disk alone.
- **Nothing leaks**: while it exists, an `unreachable` route for its whole subnet on this host means a
  packet for an address of it that the veth cannot carry (the veth gone, a connection of a removed
  container) is refused here, never sent down the default route.
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from scripts.local_env import apt_get_install
from template.tests.docker.engine import (
    CACHE_DIR,
    DockerdDidNotStart,
    DockerEngine,
    DockerError,
    start_dockerd,
    stop_dockerd,
)
from template.tests.docker.images import unmount_below

NAMESPACE = "user-processing-host2"
VETH = "up-host2"  # this host's end of the pair (at most 15 characters); the namespace's end is eth0
RUN_DIR = Path("/run/user-processing-host2")  # socket, pidfile, exec-root: short paths, gone at reboot
DATA_ROOT = CACHE_DIR / "docker-host2"  # beside the first engine's data-root: its images stay
LOG = CACHE_DIR / "dockerd-host2.log"
# Where the second host's subnet is taken from: the first /24 of these that nothing here uses.
CANDIDATES = ipaddress.ip_network("10.213.0.0/20")
CLONE_NEWNET = 0x40000000  # setns(2): join a network namespace

NEEDS = """A second host (make test-docker starts one: a network namespace with a second Docker engine
in it) needs root on Linux, with iproute2 (`ip`), util-linux (`nsenter`) and dockerd (Debian/Ubuntu:
apt-get install iproute2 util-linux docker.io; as root make test-docker installs what is missing).
Run make test-docker as root, e.g. in a virtual machine or a CI runner."""

T = TypeVar("T")


class SecondHostNotAvailable(RuntimeError):
    pass


@dataclass
class Subnet:
    """One /24: the veth pair in .0/30 (.1 this host, .2 the second), the second engine's bridge in
    .64/26, the networks its containers get (compose's, a /27 each) in .128/25."""

    network: ipaddress.IPv4Network

    @property
    def veth(self) -> ipaddress.IPv4Network:
        return next(self.network.subnets(new_prefix=30))

    @property
    def first_address(self) -> str:
        return str(self.veth.network_address + 1)

    @property
    def second_address(self) -> str:
        return str(self.veth.network_address + 2)

    @property
    def bridge(self) -> str:
        """The second engine's docker0, as dockerd's --bip wants it (its address and prefix)."""
        return f"{self.network.network_address + 65}/26"

    @property
    def pool(self) -> ipaddress.IPv4Network:
        return ipaddress.ip_network(f"{self.network.network_address + 128}/25")


@dataclass
class SecondHost:
    """The namespace, the veth pair and the dockerd in it; `engine` runs docker commands there."""

    engine: DockerEngine = field(init=False)
    subnet: Subnet = field(init=False)
    dockerd: subprocess.Popen | None = field(default=None, init=False)
    say: Callable[[str], None] = print

    @classmethod
    def start(cls, say: Callable[[str], None] = print) -> SecondHost:
        host = cls(say)
        try:
            host.boot()
        except BaseException:
            host.stop()  # nothing half-made stays (a namespace, a veth, a dockerd)
            raise
        return host

    @property
    def first_address(self) -> str:
        """This host's address on the veth: what the second host reaches this one at."""
        return self.subnet.first_address

    @property
    def second_address(self) -> str:
        return self.subnet.second_address

    @property
    def running(self) -> bool:
        """Its dockerd runs (False after cut_off or stop, until boot)."""
        return self.dockerd is not None and self.dockerd.poll() is None

    def boot(self) -> None:
        """Clear what an earlier run left (killed, cut off), then the namespace, the veth and dockerd."""
        _check_requirements(self.say)
        remove_leftovers()
        self.subnet = Subnet(unused_subnet())
        _ip("netns", "add", NAMESPACE)
        _ip("link", "add", VETH, "type", "veth", "peer", "name", "eth0", "netns", NAMESPACE)
        _ip("address", "add", f"{self.first_address}/30", "dev", VETH)
        _ip("link", "set", VETH, "up")
        _ip("route", "add", "unreachable", str(self.subnet.network))  # the /30 above is more specific
        _ip("-n", NAMESPACE, "address", "add", f"{self.second_address}/30", "dev", "eth0")
        _ip("-n", NAMESPACE, "link", "set", "eth0", "up")
        _ip("-n", NAMESPACE, "link", "set", "lo", "up")
        self._start_engine()

    def power_on(self) -> None:
        """After cut_off: its network card up again and its engine started on the same disk, as a
        machine that gets its power back. Its addresses stay, so what this host publishes on
        `first_address` (ports, the object store) serves it again; its containers are removed."""
        if self.running:
            return
        unmount_below(RUN_DIR)  # what the killed engine's containers had mounted
        unmount_below(DATA_ROOT)
        _ip("-n", NAMESPACE, "link", "set", "eth0", "up")
        self._start_engine()

    def _start_engine(self) -> None:
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        DATA_ROOT.mkdir(parents=True, exist_ok=True)
        config = RUN_DIR / "daemon.json"  # not /etc/docker/daemon.json, which is the first engine's
        config.write_text("{}\n")
        socket = f"unix://{RUN_DIR}/docker.sock"
        self.engine = DockerEngine({**os.environ, "DOCKER_HOST": socket}, "")
        command = [
            "nsenter",
            f"--net=/run/netns/{NAMESPACE}",
            "dockerd",
            f"--config-file={config}",
            f"--data-root={DATA_ROOT}",
            f"--exec-root={RUN_DIR}/exec",
            f"--pidfile={RUN_DIR}/docker.pid",
            f"--host={socket}",
            f"--bip={self.subnet.bridge}",
            f"--default-address-pool=base={self.subnet.pool},size=27",
        ]
        try:
            self.dockerd = start_dockerd(command, self.engine.env, LOG)
        except DockerdDidNotStart as error:
            raise SecondHostNotAvailable(f"the second host's {error}") from None
        # Everything on this engine is the tests': what an earlier run left goes.
        left = self.engine.docker("ps", "--all", "--quiet").stdout.split()
        if left:
            self.say(f"second host: removing {len(left)} container(s) left by an earlier run")
            self.engine.docker("rm", "--force", "--volumes", *left)
        self.engine.docker("network", "prune", "--force")
        self.engine.docker("volume", "prune", "--force")
        version = self.engine.docker("version", "--format", "{{.Server.Version}}").stdout.strip()
        self.engine.description = (
            f"Docker Engine {version} in network namespace {NAMESPACE} at {self.second_address} "
            f"(this host: {self.first_address} on {VETH}), data-root {DATA_ROOT}"
        )

    def load(self, first: DockerEngine, image: str) -> str:
        """`image` from the first engine onto this one (docker save | docker load), unless this one holds
        that image id already; says which, and how long it took."""
        wanted = _image_id(first, image)
        if _image_id(self.engine, image) == wanted:
            return f"{image}: on the second host already"
        if _image_id(self.engine, wanted):  # the same image under another name
            self.engine.docker("tag", wanted, image)
            return f"{image}: on the second host already (tagged)"
        started = time.monotonic()
        save = subprocess.Popen(["docker", "save", image], env=first.env, stdout=subprocess.PIPE)
        loaded = subprocess.run(
            ["docker", "load", "--quiet"],
            env=self.engine.env,
            stdin=save.stdout,
            capture_output=True,
            text=True,
            check=False,
        )
        save.stdout.close()
        if save.wait() != 0 or loaded.returncode != 0:
            raise DockerError(f"docker save {image} | docker load failed:\n{loaded.stderr}")
        if _image_id(self.engine, image) != wanted:
            raise DockerError(f"{image}: the second host loaded another image id than the first engine's")
        size = int(first.docker("image", "inspect", "--format", "{{.Size}}", image).stdout)
        took = time.monotonic() - started
        return f"{image}: docker save | docker load in {took:.1f} s ({size / 1e6:.0f} MB)"

    def inside(self, function: Callable[..., T], *args) -> T:
        """function(*args) in a thread that has joined the second host's network namespace: every
        connection it opens leaves from the second host. What it raises is raised here."""
        outcome: dict[str, object] = {}

        def run() -> None:
            try:
                _join_network_namespace(Path("/run/netns") / NAMESPACE)
                outcome["value"] = function(*args)
            except BaseException as error:  # handed to the caller's thread
                outcome["error"] = error

        thread = threading.Thread(target=run, name="second-host")  # used once, never returned to a pool
        thread.start()
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def routes(self) -> list[dict]:
        """The second host's routing table (`ip -j route`)."""
        return _ip_json("-n", NAMESPACE, "-4", "route")

    def processes(self) -> set[int]:
        return _namespace_processes()

    def cut_off(self) -> None:
        """It loses power: its network card dead (its end of the veth down: this host's end keeps its
        address and route, so what is sent there goes nowhere else), then dockerd, containerd, the
        shims and every process of the containers SIGKILLed at once. Nothing is stopped or closed
        cleanly, and nothing on this host hears of it."""
        _ip("-n", NAMESPACE, "link", "set", "eth0", "down")
        _kill_all(_namespace_processes())
        if self.dockerd is not None:
            self.dockerd.wait()

    def stop(self) -> None:
        """Remove its containers, stop its dockerd, and remove the namespace, the veth and the mounts.
        The data-root stays: its images are the next run's."""
        if self.running:
            # Without them dockerd stops at once (with them it waits each one's stop timeout).
            containers = self.engine.docker("ps", "--all", "--quiet", check=False).stdout.split()
            if containers:
                self.engine.docker("rm", "--force", *containers, check=False)
            stop_dockerd(self.dockerd)
        remove_leftovers()


def remove_leftovers() -> None:
    """What a second host of this or an earlier run left: the processes of its namespace, its dockerd
    (by pidfile), its mounts, the namespace and the veth, the run folder. Found by name, never by
    memory, so a run killed before its teardown is cleared by the next one."""
    _kill_all(_namespace_processes() | _pidfile_dockerd())
    unmount_below(RUN_DIR)
    unmount_below(DATA_ROOT)
    subprocess.run(["ip", "netns", "delete", NAMESPACE], capture_output=True, check=False)
    subprocess.run(["ip", "link", "delete", VETH], capture_output=True, check=False)
    deadline = time.monotonic() + 30
    while _link_exists(VETH) and time.monotonic() < deadline:  # the kernel removes it asynchronously
        time.sleep(0.2)
    for route in _ip_json("-4", "route", "show", "type", "unreachable"):
        if route["dst"] != "default" and ipaddress.ip_network(route["dst"], strict=False).subnet_of(
            CANDIDATES
        ):
            subprocess.run(["ip", "route", "delete", "unreachable", route["dst"]], check=False)
    shutil.rmtree(RUN_DIR, ignore_errors=True)


def unused_subnet() -> ipaddress.IPv4Network:
    """The first /24 of CANDIDATES that overlaps no address, route or nameserver of this machine."""
    used = used_networks()
    for candidate in CANDIDATES.subnets(new_prefix=24):
        if not any(candidate.overlaps(network) for network in used):
            return candidate
    raise SecondHostNotAvailable(
        f"every /24 of {CANDIDATES} overlaps an address, route or nameserver of this machine, so the "
        f"second host has no subnet of its own: {sorted(map(str, used))}"
    )


def used_networks() -> list[ipaddress.IPv4Network]:
    """This machine's IPv4 addresses (with their prefixes), routes of every table, and nameservers."""
    used = []
    for interface in _ip_json("-4", "address"):
        for address in interface.get("addr_info", []):
            used.append(ipaddress.ip_network(f"{address['local']}/{address['prefixlen']}", strict=False))
    for route in _ip_json("-4", "route", "show", "table", "all"):
        if route.get("dst", "default") != "default":
            used.append(ipaddress.ip_network(route["dst"], strict=False))
    resolv = Path("/etc/resolv.conf")
    for server in re.findall(r"^\s*nameserver\s+(\S+)", resolv.read_text() if resolv.exists() else "", re.M):
        try:
            used.append(ipaddress.IPv4Network(server))
        except ValueError:
            continue  # an IPv6 nameserver
    return used


def _check_requirements(say: Callable[[str], None]) -> None:
    if sys.platform != "linux" or os.geteuid() != 0:
        raise SecondHostNotAvailable(NEEDS)
    missing = [
        package for tool, package in (("ip", "iproute2"), ("dockerd", "docker.io")) if not shutil.which(tool)
    ]
    if missing and shutil.which("apt-get"):
        for package in missing:
            say(f"the second host needs {package}: installing it with apt-get ...")
            apt_get_install(package)
    if not all(shutil.which(tool) for tool in ("ip", "nsenter", "dockerd")):
        raise SecondHostNotAvailable(NEEDS)


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SecondHostNotAvailable(f"ip {' '.join(args)} failed: {result.stderr.strip()}")


def _ip_json(*args: str) -> list[dict]:
    result = subprocess.run(["ip", "-json", *args], capture_output=True, text=True, check=True)
    return json.loads(result.stdout or "[]")


def _link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True, check=False).returncode == 0


def _image_id(engine: DockerEngine, image: str) -> str | None:
    result = engine.docker("image", "inspect", "--format", "{{.Id}}", image, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def _join_network_namespace(path: Path) -> None:
    """The calling thread joins the network namespace at `path` (os.setns, or libc's before 3.12)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        if hasattr(os, "setns"):
            os.setns(descriptor, CLONE_NEWNET)
        elif ctypes.CDLL(None, use_errno=True).setns(descriptor, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {path} failed")
    finally:
        os.close(descriptor)


def _namespace_processes() -> set[int]:
    """Every process in the second host's namespace (dockerd, containerd, the shims) and their
    descendants (the containers' processes, each in a namespace of its container)."""
    listed = subprocess.run(["ip", "netns", "pids", NAMESPACE], capture_output=True, text=True, check=False)
    found = {int(pid) for pid in listed.stdout.split()}
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    pending = list(found)
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def _pidfile_dockerd() -> set[int]:
    """The dockerd of the pidfile, if it still runs (a run killed after deleting its namespace)."""
    try:
        pid = int((RUN_DIR / "docker.pid").read_text())
        return {pid} if "dockerd" in Path(f"/proc/{pid}/cmdline").read_text() else set()
    except (OSError, ValueError):
        return set()


def _kill_all(pids: set[int]) -> None:
    """SIGSTOP them all first, so none reacts to another's end (dockerd restarting containerd, a shim
    reporting its container's exit), then SIGKILL; wait until each is gone or a zombie."""
    for sent in (signal.SIGSTOP, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sent)
            except ProcessLookupError:
                continue
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False
