"""The base images docker-compose.yaml and the Dockerfile name: pulled, or built as stand-ins.

Each image is pulled first. Where no registry answers, a stand-in is built under exactly the same name
from the recipe in standin-images/<name>/, on a Debian 12 root filesystem made with debootstrap from
the Debian mirror apt already uses. The stand-ins reproduce what the compose stack relies on of the
official images (docs/docker.md, "Stand-in images"). A stand-in is labelled with a hash of its recipe,
so it is rebuilt when the recipe changes, and reused otherwise.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scripts.local_env import apt_get_install
from template.tests.docker.engine import CACHE_DIR, DockerEngine

RECIPES = Path(__file__).parent / "standin-images"
# The stand-ins' common base (named in each recipe's FROM line).
DEBIAN_BASE = "user-processing-standin/debian:bookworm"
DEBIAN_SUITE = "bookworm"
LABEL = "user-processing.standin-recipe"
# Official image name (without tag) -> stand-in recipe folder.
STANDIN_FOR = {"apache/airflow": "airflow", "postgres": "postgres", "redis": "redis"}
# What every stand-in base carries so that HTTPS from a container verifies where the host's CA bundle
# holds extra CAs (a TLS-inspecting proxy): pip and uv read these, curl and Python's ssl read the file.
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
LOCAL_CAS = Path("/usr/local/share/ca-certificates")


@dataclass
class BaseImage:
    name: str
    origin: str  # pulled | present | stand-in built | stand-in cached


def provide(
    engine: DockerEngine, names: list[str], project_dir: Path, say: Callable[[str], None] = print
) -> list[BaseImage]:
    """Make every image in `names` available to the engine: pulled, or a stand-in."""
    return [_provide(engine, name, project_dir, say) for name in names]


def _provide(engine: DockerEngine, name: str, project_dir: Path, say: Callable[[str], None]) -> BaseImage:
    if engine.docker("pull", "--quiet", name, check=False).returncode == 0:
        return BaseImage(name, "pulled")
    existing = _label(engine, name)
    if existing == "":
        return BaseImage(name, "present (not pulled now: no registry answered)")
    repository, _, tag = name.partition(":")
    if repository not in STANDIN_FOR:
        raise StandInError(f"{name} cannot be pulled, and there is no stand-in recipe for it in {RECIPES}")
    context, build_args = _stand_in_context(STANDIN_FOR[repository], tag, project_dir)
    try:
        digest = _recipe_hash(context, build_args, _image_id(engine, ensure_debian_base(engine, say)))
        if existing == digest:
            return BaseImage(name, "stand-in, cached")
        say(f"{name} cannot be pulled: building its stand-in from {RECIPES / STANDIN_FOR[repository]} ...")
        arguments = [f"--build-arg={key}={value}" for key, value in build_args.items()]
        result = engine.docker(
            "build", f"--label={LABEL}={digest}", *arguments, "--tag", name, str(context), check=False
        )
        if result.returncode != 0:
            raise StandInError(
                f"building the stand-in for {name} failed:\n{result.stdout[-4000:]}{result.stderr}"
            )
    finally:
        shutil.rmtree(context, ignore_errors=True)
    return BaseImage(name, "stand-in, built now")


def standin_label(engine: DockerEngine, name: str) -> str | None:
    """The stand-in recipe hash a local image is labelled with: None if no such image, "" if no stand-in."""
    return _label(engine, name)


def recipe_digest(engine: DockerEngine, name: str, project_dir: Path) -> str:
    """The hash a stand-in for `name` built now from its recipe would be labelled with."""
    repository, _, tag = name.partition(":")
    context, build_args = _stand_in_context(STANDIN_FOR[repository], tag, project_dir)
    try:
        return _recipe_hash(context, build_args, _image_id(engine, DEBIAN_BASE))
    finally:
        shutil.rmtree(context, ignore_errors=True)


def _stand_in_context(recipe: str, tag: str, project_dir: Path) -> tuple[Path, dict[str, str]]:
    """A build context for the recipe, and the build arguments the image's tag implies."""
    context = Path(tempfile.mkdtemp(prefix=f"standin-{recipe}-"))
    shutil.copytree(RECIPES / recipe, context, dirs_exist_ok=True)
    build_args = {}
    if recipe == "airflow":
        match = re.fullmatch(r"(?P<airflow>\d+\.\d+\.\d+)-python(?P<python>\d+\.\d+)", tag)
        if not match or match["python"] != "3.11":
            raise StandInError(f"apache/airflow:{tag}: the stand-in builds X.Y.Z-python3.11 only (Debian 12)")
        build_args["AIRFLOW_VERSION"] = match["airflow"]
        # The official image pins its packages with Airflow's constraints file; the stand-in uses the lock.
        shutil.copy(project_dir / "requirements" / "airflow.txt", context / "constraints.txt")
    return context, build_args


def _recipe_hash(context: Path, build_args: dict[str, str], base_id: str) -> str:
    digest = hashlib.sha256(base_id.encode())
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(context)).encode() + b"\0" + path.read_bytes())
    digest.update(repr(sorted(build_args.items())).encode())
    return digest.hexdigest()[:16]


def _label(engine: DockerEngine, name: str) -> str | None:
    """The stand-in label of a local image: None if there is no such image, "" if it is no stand-in."""
    result = engine.docker(
        "image", "inspect", "--format", f'{{{{index .Config.Labels "{LABEL}"}}}}', name, check=False
    )
    if result.returncode != 0:
        return None
    label = result.stdout.strip()
    return "" if label in ("", "<no value>") else label


def _image_id(engine: DockerEngine, name: str) -> str:
    return engine.docker("image", "inspect", "--format", "{{.Id}}", name).stdout.strip()


def ensure_debian_base(engine: DockerEngine, say: Callable[[str], None]) -> str:
    """The stand-ins' Debian 12 base image: from debootstrap and Debian's archive, built once."""
    if _label(engine, DEBIAN_BASE) is not None:
        return DEBIAN_BASE
    say(f"building {DEBIAN_BASE} with debootstrap from {debian_mirror()} ...")
    if os.geteuid() != 0:
        raise StandInError(
            "no registry answers, and building stand-in images needs debootstrap as root. Either make "
            "the images pullable (docker login / a registry mirror), or run make test-docker as root."
        )
    if not shutil.which("debootstrap"):
        apt_get_install("debootstrap")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="debootstrap-", dir=CACHE_DIR) as work:
        rootfs = Path(work) / "rootfs"
        try:
            _debootstrap(rootfs)
        finally:
            unmount_below(rootfs)  # debootstrap mounts /proc and /sys inside; never delete through them
        _trust_host_cas(rootfs)
        # No daemon starts while packages install (the usual policy-rc.d of Debian container images).
        policy = rootfs / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
        (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True)
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE
        )
        changes = [
            f"ENV SSL_CERT_FILE={CA_BUNDLE} PIP_CERT={CA_BUNDLE}",
            f"LABEL {LABEL}=debootstrap-{DEBIAN_SUITE}",
            'CMD ["bash"]',
        ]
        imported = subprocess.run(
            ["docker", "import", *(f"--change={change}" for change in changes), "-", DEBIAN_BASE],
            stdin=tar.stdout,
            env=engine.env,
            capture_output=True,
            text=True,
            check=False,
        )
        tar.stdout.close()
        if tar.wait() != 0 or imported.returncode != 0:
            raise StandInError(f"importing the Debian root filesystem failed: {imported.stderr}")
    return DEBIAN_BASE


def _debootstrap(rootfs: Path) -> None:
    result = subprocess.run(
        ["debootstrap", "--variant=minbase", DEBIAN_SUITE, str(rootfs), debian_mirror()],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        log = rootfs / "debootstrap" / "debootstrap.log"
        details = log.read_text()[-3000:] if log.exists() else result.stdout[-3000:]
        raise StandInError(f"debootstrap failed ({result.returncode}):\n{details}{result.stderr[-2000:]}")


def debian_mirror() -> str:
    """The Debian mirror apt already uses for bookworm on this machine, else deb.debian.org."""
    sources = [*Path("/etc/apt/sources.list.d").glob("*.sources")]
    for path in sources:
        for stanza in path.read_text().split("\n\n"):
            fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.+)$", stanza, re.M))
            if DEBIAN_SUITE in fields.get("Suites", "").split() and "debian" in fields.get("URIs", ""):
                return fields["URIs"].split()[0]
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*.list")]:
        if path.exists():
            for line in path.read_text().splitlines():
                if match := re.match(rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{DEBIAN_SUITE}\s", line):
                    return match[1]
    return "http://deb.debian.org/debian"


def _trust_host_cas(rootfs: Path) -> None:
    """The host's CA bundle, and its local CAs so that update-ca-certificates in an image keeps them."""
    if CA_BUNDLE.exists():
        target = rootfs / CA_BUNDLE.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CA_BUNDLE, target)
    if LOCAL_CAS.is_dir():
        shutil.copytree(LOCAL_CAS, rootfs / LOCAL_CAS.relative_to("/"), dirs_exist_ok=True)


def unmount_below(folder: Path) -> None:
    prefix = str(folder.resolve()) + "/"
    with open("/proc/mounts") as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], check=False)


class StandInError(RuntimeError):
    pass
