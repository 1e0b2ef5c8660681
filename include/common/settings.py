"""How a DAG reads its settings: each option from its own section of Airflow's configuration.

A DAG `my_dag` reads `[my_dag] option` (the environment variable AIRFLOW__MY_DAG__OPTION, a line in
airflow.env, or airflow.cfg), with its default written where it is read. Each DAG package keeps its
options in one settings.py that uses these, so all of a DAG's knobs are in one place. What the
whole project shares has a section of its own, read where it is used: `[dbt] mode` (dbt_tasks.py).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk.configuration import conf


def seconds(section: str, option: str, default: float) -> timedelta:
    return timedelta(seconds=conf.getfloat(section, option, fallback=default))


def integer(section: str, option: str, default: int) -> int:
    return conf.getint(section, option, fallback=default)


def text(section: str, option: str, default: str) -> str:
    return conf.get(section, option, fallback=default)
