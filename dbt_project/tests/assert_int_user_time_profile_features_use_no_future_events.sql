{#
    No leakage, time-profile family: recomputes from staging, with the databases' own
    clock functions (extract hour / minute / second / isodow, not the model's epoch
    arithmetic), the mean sin and cos of the hour and weekday angles and the weekend share
    of the events in (cutoff_time - lookback, cutoff_time]. A row fails when any differs
    by more than 1e-9: an event after the cutoff moves the means.
#}

{{ config(tags=['feature_family']) }}

{%- set lookback = var('lookback_seconds') | int -%}
{%- set sample = shopflow.leakage_sample(ref('int_user_time_profile_features')) | trim -%}

with

features as (

    select * from {{ ref('int_user_time_profile_features') }} where {{ sample }}

),

events as (

    select
        user_id,
        event_time,
        cast(extract(hour from event_time) as double precision)
            + cast(extract(minute from event_time) as double precision) / 60
            + cast(extract(second from event_time) as double precision) / 3600 as hour_of_day,
        cast(extract(isodow from event_time) as double precision) - 1 as weekday

    from {{ ref('stg_shop__events') }} where {{ sample }}

),

recounted as (

    select
        features.user_id,
        features.cutoff_time,
        avg(sin(2 * pi() * events.hour_of_day / 24)) as hour_sin,
        avg(cos(2 * pi() * events.hour_of_day / 24)) as hour_cos,
        avg(sin(2 * pi() * events.weekday / 7)) as weekday_sin,
        avg(cos(2 * pi() * events.weekday / 7)) as weekday_cos,
        avg(case when events.weekday >= 5 then 1.0 else 0.0 end) as weekend_share

    from features

    left join events
        on
            events.user_id = features.user_id
            and events.event_time <= features.cutoff_time
            and events.event_time > {{ shopflow.add_seconds('features.cutoff_time', -lookback) }}

    group by features.user_id, features.cutoff_time

),

compared as (

    select
        features.*,
        recounted.hour_sin,
        recounted.hour_cos,
        recounted.weekday_sin,
        recounted.weekday_cos,
        recounted.weekend_share

    from features

    inner join recounted
        on
            features.user_id = recounted.user_id
            and features.cutoff_time = recounted.cutoff_time

),

final as (

    select *

    from compared

    where
        not coalesce(abs(hour_sin - hour_sin_mean_lookback) < 1e-9, false)
        or not coalesce(abs(hour_cos - hour_cos_mean_lookback) < 1e-9, false)
        or not coalesce(abs(weekday_sin - weekday_sin_mean_lookback) < 1e-9, false)
        or not coalesce(abs(weekday_cos - weekday_cos_mean_lookback) < 1e-9, false)
        or not coalesce(abs(weekend_share - weekend_share_lookback) < 1e-9, false)

)

select * from final
