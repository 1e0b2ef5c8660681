"""The pipeline's own errors, in one light module so the DAG can name them in its retry policy.

Each one means "retrying the task cannot help": the DAG fails the task at once instead of retrying.
Transient problems (timeouts, 5xx, 429, outage answers) are not here: they are retried, see user_api.
"""


class UserApiRequestRejected(Exception):
    """The API refused the request (a 4xx other than 429): fix the connection or the request."""


class InvalidUserPayload(Exception):
    """The API answered, but its users break the contract the pipeline relies on."""


class MissingStagingFile(Exception):
    """An upstream task's output is not in the run's staging folder (run that task first)."""


class LoadError(Exception):
    """The batch could not be loaded into `users`, which is left unchanged."""


FAIL_FAST_ERRORS = (UserApiRequestRejected, InvalidUserPayload, MissingStagingFile, LoadError)
