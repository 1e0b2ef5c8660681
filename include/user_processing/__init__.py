"""The user_processing pipeline's logic, kept out of the DAG file so it is plain, testable Python.

Modules, in the order the DAG uses them:
- ``settings``: names and limits shared by the DAG, the tasks and the tests.
- ``staging``: where one run's files live (an ``ObjectStoragePath`` keyed by DAG and logical date).
- ``user_api``: talking to the randomuser.me-style API: availability check, paging, retries, validation.
- ``transform``: API users -> CSV rows (pandas).
- ``load``: CSV -> the ``users`` table (COPY into a staging table, then one upsert, in one transaction).

Importing this package is cheap: heavy libraries (pandas, psycopg, requests) are imported by the
modules that need them, which the DAG only imports inside its tasks.
"""
