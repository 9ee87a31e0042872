{#
    Time-profile family: when in the day and week the user is active, one row per
    (user_id, cutoff_time) of int_user_events_by_cutoff, over the window's events.

    Hour (fractional, 0-24) and weekday (0 = Monday .. 6 = Sunday) come from the naive UTC
    event_time by epoch arithmetic (the same on DuckDB and PostgreSQL; 1970-01-01 was a
    Thursday). The cyclical encoding is the circular mean: the mean of sin and of cos of
    each event's angle (2 pi hour / 24, 2 pi weekday / 7). Its direction is the user's
    mean hour (mean weekday) without the 23h -> 0h jump, its length
    (hour_concentration_lookback) says how concentrated the activity is (1 = always the
    same hour, 0 = spread evenly). All in [-1, 1] or [0, 1]: no outliers.

    Missing values: none; every row has at least one event.
#}

{#- A table, not a view like the other intermediates: user_features and this model's tests
    (its invariants and leakage test) then read it instead of recomputing it each. -#}
{{ config(materialized='table') }}

with

events as (

    select
        user_id,
        cutoff_time,
        {{ shopflow.epoch_seconds('event_time') }} as epoch

    from {{ ref('int_user_events_by_cutoff') }}

),

clock as (

    select
        user_id,
        cutoff_time,
        (epoch - 86400 * floor(epoch / 86400)) / 3600.0 as hour_of_day,
        (floor(epoch / 86400) + 3) - 7 * floor((floor(epoch / 86400) + 3) / 7) as weekday

    from events

),

aggregated as (

    select
        user_id,
        cutoff_time,
        avg(sin(2 * pi() * hour_of_day / 24)) as hour_sin,
        avg(cos(2 * pi() * hour_of_day / 24)) as hour_cos,
        avg(sin(2 * pi() * weekday / 7)) as weekday_sin,
        avg(cos(2 * pi() * weekday / 7)) as weekday_cos,
        avg(case when weekday >= 5 then 1.0 else 0.0 end) as weekend_share,
        avg(case when hour_of_day < 6 then 1.0 else 0.0 end) as night_share

    from clock

    group by user_id, cutoff_time

),

final as (

    select
        user_id,
        cutoff_time,
        cast(hour_sin as double precision) as hour_sin_mean_lookback,
        cast(hour_cos as double precision) as hour_cos_mean_lookback,
        -- least(): rounding may push a length of exactly 1 a hair above it
        cast(least(sqrt(hour_sin * hour_sin + hour_cos * hour_cos), 1.0) as double precision)
            as hour_concentration_lookback,
        cast(weekday_sin as double precision) as weekday_sin_mean_lookback,
        cast(weekday_cos as double precision) as weekday_cos_mean_lookback,
        cast(weekend_share as double precision) as weekend_share_lookback,
        cast(night_share as double precision) as night_share_lookback

    from aggregated

)

select * from final
