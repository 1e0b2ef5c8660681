"""What the numbers were measured on: each table row names it (CPU model and cores)."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path

import psutil

PACKAGES = (
    "apache-airflow",
    "pandas",
    "numpy",
    "msgspec",
    "psycopg",
    "astronomer-cosmos",
    "apache-airflow-providers-amazon",
    "s3fs",
)


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def describe() -> dict:
    cores = os.cpu_count() or 1
    return {
        "cpu": cpu_model(),
        "cores": cores,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "packages": {name: _version(name) for name in PACKAGES},
        "load_average_at_start": os.getloadavg(),
        "short": f"{cpu_model()}, {cores} cores",
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
