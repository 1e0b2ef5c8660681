"""The pipeline's own errors, in one light module so the DAG can name them in its retry policy.

Each one means "retrying the task cannot help": the DAG fails the task at once instead of retrying.
Transient problems (timeouts, 5xx, 429, outage answers) are not here: they are retried, see user_api.
"""

from include.common.run_folder import MissingRunFile


class UserApiRequestRejected(Exception):
    """The API refused the request (a 4xx other than 429): fix the connection or the request."""


class InvalidUserPayload(Exception):
    """The API answered, but its users break the contract the pipeline relies on."""


class LoadError(Exception):
    """The batch could not be loaded into `users`, which is left unchanged."""


# MissingRunFile (an upstream task's output is missing) too: run that task first.
FAIL_FAST_ERRORS = (UserApiRequestRejected, InvalidUserPayload, MissingRunFile, LoadError)
