"""A detect-secrets plugin for the secrets this template's files could hold that its built-in
plugins miss (detect-secrets 1.5): a short Fernet key or token under a name its keyword list lacks,
a literal default in `${VAR:-default}`, credentials in a URL written in prose. `make lint` runs it
(`--plugin scripts/secret_literals.py` in .pre-commit-config.yaml).

A value that points at where the secret comes from (`${VAR}`, `${VAR:?error}`, `$(command)`,
`{template}`, `<placeholder>`, CHANGE_ME) is not a secret; nor is one containing "test", the
convention for the tests' throwaway servers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from detect_secrets.core.potential_secret import PotentialSecret
from detect_secrets.plugins.base import BasePlugin

NAMES = r"(?i:password|passwd|secret|fernet_key|token|api_key)"
# `name = value` or `name: value`, not `==` (a comparison, or a pin such as detect-secrets==1.5.0).
ASSIGNED = NAMES + r"\w*[\"']?\s*[:=](?!=)\s*"
# In Python only a quoted string is a literal (`password=password` is code); elsewhere any value is.
PYTHON_LITERAL = re.compile(ASSIGNED + r"(?P<quote>[\"'])(?P<value>[^\"']*)(?P=quote)")
CONFIG_LITERAL = re.compile(ASSIGNED + r"[\"']?(?P<value>[^\s\"',}#]*)")
SHELL_DEFAULT = re.compile(r"\$\{\w*" + NAMES + r"\w*:?-(?P<value>[^}]*)\}")
URL_CREDENTIALS = re.compile(r"://(?P<user>[\w.-]+):(?P<value>[^@\s/]+)@")
REFERENCE = re.compile(r"^(\$\{.*|\$\(.*|\{.*|\?.*|<[^>]*>|CHANGE_?ME\w*|\*+|)$", re.IGNORECASE)
THROWAWAY = re.compile(r"test", re.IGNORECASE)


def secret_literals(filename: str, line: str) -> list[str]:
    """The literal secret values in one line of the file `filename`."""
    if filename.endswith(".md"):  # prose says "token: ..." freely; only credentials in URLs count
        patterns = [URL_CREDENTIALS]
    else:
        literal = PYTHON_LITERAL if filename.endswith(".py") else CONFIG_LITERAL
        patterns = [literal, SHELL_DEFAULT, URL_CREDENTIALS]
    values = [m.group("value").removeprefix("-") for pattern in patterns for m in pattern.finditer(line)]
    return [value for value in values if not (REFERENCE.match(value) or THROWAWAY.search(value))]


class SecretLiteral(BasePlugin):
    secret_type = "Secret literal"  # pragma: allowlist secret  # noqa: S105 (a label, not a secret)

    def analyze_string(self, string: str) -> Iterator[str]:  # detect-secrets calls analyze_line
        yield from secret_literals("", string)

    def analyze_line(self, filename: str, line: str, line_number: int = 0, **kwargs: Any) -> set:
        return {
            PotentialSecret(self.secret_type, filename, value, line_number)
            for value in secret_literals(filename, line)
        }
