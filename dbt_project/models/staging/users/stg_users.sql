-- One clean row per user: trimmed names, lower-cased email, everything else as the API sent it.
with source as (

    select * from {{ source('warehouse', 'users') }}

),

cleaned as (

    select
        user_id,
        trim(firstname) as first_name,
        trim(lastname) as last_name,
        lower(trim(email)) as email,
        username,
        gender,
        trim(city) as city,
        country,
        postcode,
        nationality,
        registered_at,
        loaded_at
    from source

)

select * from cleaned
