"""The users_report pipeline's logic: ``report`` reads the dbt marts and writes the report files.

The second DAG of the template, and the one to copy when you add your own: see "Adding a DAG" in
the README.
"""
