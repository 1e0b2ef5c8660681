-- Every user is counted in exactly one country: the per-country counts add up to dim_users.
with countries as (
    select sum(users) as total_from_countries from {{ ref('users_by_country') }}
),

all_users as (
    select count(*) as total_users from {{ ref('dim_users') }}
)

select
    countries.total_from_countries,
    all_users.total_users
from countries
cross join all_users
where countries.total_from_countries <> all_users.total_users
