"""Generated dbt projects for the dbt scaling benchmark, shaped like real ones, never shipped.

A project of N models over the template's own `users` table (the source `warehouse.users`, with
its freshness check, as in dbt_project/):

- about 2/5 staging views, each one slice of the users (its own hash bucket), cleaned;
- about 2/5 marts tables, each users per country over three staging models;
- the rest incremental models (delete+insert on user_id), each the union of three staging models;
- one data test on each model, and the source's own tests.

Written under .local/bench/dbt/<N>-models/, with dbt_project/'s profiles.yml, and its manifest
built there by the template's own step (include/common/dbt_manifest.py), so the DAG renders it
exactly as it renders dbt_project/.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from include.common.dbt_manifest import ensure_manifest, project_config
from include.common.project import DBT_PROJECT_DIR
from template.bench.inputs import BENCH_DIR

PROJECTS_DIR = BENCH_DIR / "dbt"
SOURCE_YAML = DBT_PROJECT_DIR / "models" / "staging" / "users" / "_sources.yml"  # the template's own source

PROJECT_YAML = """\
name: bench_{models}_models
version: "1.0.0"
profile: {profile}
model-paths: ["models"]
flags:
  send_anonymous_usage_stats: false
models:
  bench_{models}_models:
    staging:
      +materialized: view
    marts:
      +materialized: table
"""

STAGING_SQL = """\
select
    user_id,
    trim(firstname) as first_name,
    trim(lastname) as last_name,
    lower(trim(email)) as email,
    country,
    registered_at,
    loaded_at
from {{{{ source('warehouse', 'users') }}}}
where abs(hashtext(user_id::text)) % {buckets} = {bucket}
"""

MART_SQL = """\
with sliced as (
{unions}
)

select
    country,
    count(*) as users,
    min(registered_at) as first_registered_at
from sliced
group by country
"""

INCREMENTAL_SQL = """\
{{{{ config(materialized='incremental', unique_key='user_id', incremental_strategy='delete+insert') }}}}

with sliced as (
{unions}
)

select * from sliced
{{% if is_incremental() %}}
    where loaded_at >= (select coalesce(max(loaded_at), '-infinity') from {{{{ this }}}})
{{% endif %}}
"""

UNION_PART = "    select user_id, email, country, registered_at, loaded_at from {{{{ ref('{model}') }}}}"


@dataclass(frozen=True)
class Shape:
    staging: int
    marts: int
    incremental: int

    @classmethod
    def of(cls, models: int) -> Shape:
        if models < 3:
            raise ValueError(f"a generated project needs at least 3 models, not {models}")
        staging = max(1, models * 2 // 5)
        marts = max(1, models * 2 // 5)
        return cls(staging, marts, models - staging - marts)


def project_dir(models: int) -> Path:
    return PROJECTS_DIR / f"{models}-models"


def generate(models: int) -> Path:
    """Write the project of `models` models (replacing an older one) and parse it; returns its folder."""
    folder = project_dir(models)
    shutil.rmtree(folder, ignore_errors=True)
    shape = Shape.of(models)
    staging = [f"stg_users_{i:03d}" for i in range(shape.staging)]

    def upstream(index: int) -> list[str]:  # three staging models (fewer when there are fewer)
        return sorted({staging[(index + step) % len(staging)] for step in range(3)})

    def unions(index: int) -> str:
        return "\n    union all\n".join(UNION_PART.format(model=model) for model in upstream(index))

    files: dict[str, str] = {
        "dbt_project.yml": PROJECT_YAML.format(
            models=models, profile=project_config(DBT_PROJECT_DIR)["profile"]
        ),
        "profiles.yml": (DBT_PROJECT_DIR / "profiles.yml").read_text(),
        "models/staging/users/_sources.yml": SOURCE_YAML.read_text(),
    }
    tests: dict[str, list[tuple[str, str, str]]] = {"staging": [], "marts": []}
    for bucket, name in enumerate(staging):
        files[f"models/staging/{name}.sql"] = STAGING_SQL.format(buckets=len(staging), bucket=bucket)
        tests["staging"].append((name, "user_id", "unique"))
    for index in range(shape.marts):
        name = f"users_by_country_{index:03d}"
        files[f"models/marts/{name}.sql"] = MART_SQL.format(unions=unions(index))
        tests["marts"].append((name, "country", "unique"))
    for index in range(shape.incremental):
        name = f"users_incremental_{index:03d}"
        files[f"models/marts/{name}.sql"] = INCREMENTAL_SQL.format(unions=unions(index))
        tests["marts"].append((name, "user_id", "not_null"))
    for layer, layer_tests in tests.items():
        files[f"models/{layer}/_{layer}.yml"] = models_yaml(layer_tests)

    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    ensure_manifest(folder)
    return folder


def models_yaml(tests: list[tuple[str, str, str]]) -> str:
    lines = ["version: 2", "", "models:"]
    for model, column, test in tests:
        lines += [
            f"  - name: {model}",
            "    columns:",
            f"      - name: {column}",
            f"        data_tests: [{test}]",
        ]
    return "\n".join(lines) + "\n"
