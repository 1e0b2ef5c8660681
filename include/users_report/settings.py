"""users_report's options, section [users_report] (include/common/settings.py says how they are read)."""

from __future__ import annotations

from include.common.settings import seconds

DAG_ID = "users_report"

# dbt builds the marts a few minutes after store_user; this long without them means dbt failed.
MARTS_POKE_INTERVAL = seconds(DAG_ID, "marts_poke_interval", 30)
MARTS_TIMEOUT = seconds(DAG_ID, "marts_timeout", 60 * 60)
