{#- When dbt built the table, by the warehouse's clock. users_report reads a mart only once its
    built_at is newer than the last load into `users` (include/users_report/report.py). -#}
{% macro built_at() -%}
    current_timestamp
{%- endmacro %}
