"""Fail early, and say what to do, when the Python that creates .venv is older than pyproject allows.

Run by `make` with the system Python before anything is installed, so it must work on any Python 3:
it reads `requires-python` with a regular expression (tomllib only exists from 3.11 on).
"""

import re
import sys
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"

minimum = re.search(r'^requires-python\s*=\s*">=\s*(\d+)\.(\d+)', PYPROJECT.read_text(), re.MULTILINE)
if minimum is None:
    sys.exit(f'{PYPROJECT}: no requires-python = ">=X.Y" in [project]')
required = (int(minimum.group(1)), int(minimum.group(2)))
if sys.version_info[:2] < required:
    sys.exit(
        f"Python {required[0]}.{required[1]}+ is required (pyproject.toml), this is "
        f"{sys.version.split()[0]} at {sys.executable}: set PYTHON=/path/to/python{required[0]}.{required[1]}"
    )
