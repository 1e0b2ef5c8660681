-- Every user is counted in exactly one country: the per-country counts add up to dim_users.
select total_from_countries, total_users
from (select sum(users) as total_from_countries from {{ ref('users_by_country') }}) as countries
cross join (select count(*) as total_users from {{ ref('dim_users') }}) as all_users
where total_from_countries <> total_users
