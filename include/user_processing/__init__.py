"""The user_processing pipeline's logic, kept out of the DAG file so it is plain, testable Python.

Modules, in the order the DAG uses them (one per task; what every DAG shares is in include/common/):
- ``settings``: names and limits shared by the DAG, the tasks and the tests.
- ``user_api``: talking to the randomuser.me-style API: availability check, paging, retries.
- ``validation``: what the pipeline needs from each user, and the error naming what is wrong.
- ``extract``: extract_user: the API's pages into the run folder (``run_files`` names the files).
- ``process``: process_user: API users -> users.csv (pandas); the fast paths are in ``fast_paths``.
- ``store``: store_user: users.csv -> the ``users`` table (COPY, then one upsert, in one transaction).
- ``errors``: the errors that fail a task at once instead of retrying it.

Importing this package is cheap: heavy libraries (pandas, psycopg, requests) are imported by the
modules that need them, which the DAG only imports inside its tasks.
"""
