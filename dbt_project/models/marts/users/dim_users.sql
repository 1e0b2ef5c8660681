-- One row per user with their newest values: the table to join users from.
-- Incremental: a run only reads users loaded since the previous run, and merges them on user_id.
-- `>=` re-reads the newest load on purpose: re-runs stay idempotent (delete+insert on the key).
{{
    config(
        materialized='incremental',
        unique_key='user_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
    )
}}

select
    user_id,
    first_name,
    last_name,
    first_name || ' ' || last_name as full_name,
    email,
    username,
    gender,
    city,
    country,
    postcode,
    nationality,
    registered_at,
    extract(year from registered_at)::integer as registration_year,
    loaded_at
from {{ ref('stg_users') }}

{% if is_incremental() %}
    where loaded_at >= (
        select coalesce(max(already_loaded.loaded_at), '-infinity') from {{ this }} as already_loaded
    )
{% endif %}
