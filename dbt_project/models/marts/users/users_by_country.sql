-- How many users each country has, and its share of all users.
select
    country,
    count(*) as users,
    round(100.0 * count(*) / sum(count(*)) over (), 2) as share_pct
from {{ ref('dim_users') }}
group by country
