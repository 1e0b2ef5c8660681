"""The environment of a Celery worker on another machine, from the compose stack's own configuration.

Reads `docker compose config --format json` on standard input and writes, as `docker run --env-file`
takes it, the environment the stack gives its own airflow-worker (airflow.env included), with every
service it names (the broker, the result backend, the api-server's execution API, the warehouse, the
stand-in user API) replaced by the address and port the stack publishes it on. So the worker elsewhere
runs with the same keys, connections and settings, and nothing of them is written twice. Left out:
what only the stack's own containers use (the mounted airflow.cfg, pip installs at start-up).

    docker compose config --format json | python3 -m scripts.worker_env --output worker.env

The address is PUBLISH_ADDRESS, read from the published ports; 127.0.0.1 (the default) is refused,
since no other machine reaches it. `--address` names it when the ports are published on 0.0.0.0.
Standard library only: it runs on the first host without the virtualenv. docs/deploying.md has the
commands around it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

WORKER = "airflow-worker"
LEFT_OUT = {"AIRFLOW_CONFIG", "_PIP_ADDITIONAL_REQUIREMENTS"}
UNREACHABLE = {"127.0.0.1", "localhost", "::1"}
ANY = {"", "0.0.0.0", "::"}  # noqa: S104 - what a port published on every address says


class WorkerEnvError(ValueError):
    pass


def published(config: dict) -> dict[str, tuple[int, str, int]]:
    """Each service that publishes a port -> (its port in its container, host address, host port)."""
    found = {}
    for name, service in config["services"].items():
        for port in service.get("ports", []):
            found[name] = (int(port["target"]), port.get("host_ip", ""), int(port["published"]))
    return found


def worker_env(config: dict, address: str | None = None) -> dict[str, str]:
    """The airflow-worker's environment with the services it names at their published addresses."""
    ports = published(config)
    # A service as the host of a URL: after "//" and any "user:password@", up to its path or the end.
    host = re.compile(r"(//(?:[^/@\s]*@)?)(" + "|".join(map(re.escape, ports)) + r")(?::(\d+))?(?=[/?#]|$)")
    environment = {
        key: value
        for key, value in config["services"][WORKER]["environment"].items()
        if key not in LEFT_OUT and value is not None
    }
    named = {match[2] for value in environment.values() for match in host.finditer(value)}
    addresses = {ports[name][1] for name in named}
    if address is None:
        if len(addresses) != 1 or addresses & (UNREACHABLE | ANY):
            raise WorkerEnvError(
                f"the stack publishes {', '.join(sorted(named))} on {sorted(addresses)}: set PUBLISH_ADDRESS "
                "in .env to the address the other machine reaches this one at, then `docker compose up -d` "
                "(or give --address when they are published on 0.0.0.0)"
            )
        (address,) = addresses

    def replace(match: re.Match) -> str:
        target, _, host_port = ports[match[2]]
        if match[3] and int(match[3]) != target:
            raise WorkerEnvError(f"port {match[3]} of {match[2]} is not published")
        return f"{match[1]}{address}:{host_port}"

    env = {}
    for key, value in environment.items():
        if "\n" in value:
            raise WorkerEnvError(f"{key} holds a line break, which an --env-file cannot carry")
        env[key] = host.sub(replace, value)
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="the env file to write (mode 600: it holds secrets)")
    parser.add_argument("--address", help="the first host's address, when its ports are published on 0.0.0.0")
    args = parser.parse_args(argv)
    try:
        env = worker_env(json.load(sys.stdin), args.address)
    except WorkerEnvError as error:
        print(f"worker_env: {error}", file=sys.stderr)
        return 1
    descriptor = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as output:
        output.writelines(f"{key}={value}\n" for key, value in sorted(env.items()))
    print(f"worker_env: {len(env)} variables in {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
