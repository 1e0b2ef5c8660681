"""Command line: python -m template.standin_user_api [--host H] [--port P] [--edge-cases] [--fault SPEC]...

Prints one line, "listening on http://HOST:PORT", then serves until SIGTERM or Ctrl-C (exit 0).
"""

from __future__ import annotations

import argparse
import signal
import sys

from template.standin_user_api.server import make_server, parse_fault_option


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    server = make_server(args.host, args.port, faults=args.fault, edge_cases=args.edge_cases)
    # SIGINT too, explicitly: a shell starts background jobs with SIGINT ignored.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, _stop)
    host, port = server.server_address[:2]
    print(f"listening on http://{host}:{port}", flush=True)  # callers parse this line
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # leaves serve_forever(); caught in main()


def _fault(text: str) -> dict:
    try:
        return parse_fault_option(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m template.standin_user_api",
        description="Stand-in for the randomuser.me API 1.4. Routes and fault modes: see server.py.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind; 0.0.0.0 inside a container")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on; 0 picks a free one")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        type=_fault,
        metavar="SPEC",
        help='queue a fault rule, e.g. "status=503,times=2", "timeout=5", "drop_field=login.uuid,after=1"',
    )
    parser.add_argument(
        "--edge-cases", action="store_true", help="CSV-hostile values in the first 8 users of every page"
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
