-- How many of the users signed up in each year (by the API's registered.date).
select
    registration_year,
    count(*) as users
from {{ ref('dim_users') }}
where registration_year is not null
group by registration_year
