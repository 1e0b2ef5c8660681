"""users_report's names, section [users_report] (include/common/settings.py says how options are read)."""

from __future__ import annotations

DAG_ID = "users_report"

# The dbt models (marts) the report reads, by their dbt names: the DAG runs once both were rebuilt
# (its schedule is their Assets), and reads the relations the dbt manifest says they build.
BY_COUNTRY_MART = "users_by_country"
BY_YEAR_MART = "users_by_registration_year"
MARTS = (BY_COUNTRY_MART, BY_YEAR_MART)
