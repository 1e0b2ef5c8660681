"""Stand-in for the public randomuser.me API 1.4, for the demo and the tests.

`generate_page` builds deterministic users shaped like the real API's; `make_server` serves them
over HTTP with injectable faults (routes, parameters and fault modes: see `server`). Run it with
`python -m template.standin_user_api --port 8000`.
"""

from template.standin_user_api.generator import generate_page
from template.standin_user_api.server import make_server

__all__ = ["generate_page", "make_server"]
