{#
    No leakage, trend family: recounts from staging the events and purchase lines in the
    short window (cutoff_time - min(horizon, lookback), cutoff_time] and in the lookback,
    and fails each row whose rate ratios differ from the recount (or are null where it has
    one, or the reverse). Events after the cutoff would inflate the short window's count.
#}

{{ config(tags=['feature_family']) }}

{%- set horizon = var('horizon_seconds') | int -%}
{%- set lookback = var('lookback_seconds') | int -%}
{%- set short = [horizon, lookback] | min -%}
{%- set sample = shopflow.leakage_sample(ref('int_user_trend_features')) | trim -%}

with

features as (

    select * from {{ ref('int_user_trend_features') }} where {{ sample }}

),

events as (

    select user_id, event_type, event_time from {{ ref('stg_shop__events') }} where {{ sample }}

),

recounted as (

    select
        features.user_id,
        features.cutoff_time,
        cast(count(events.event_time) as double precision) as events_lookback,
        cast(sum(case
            when events.event_time > {{ shopflow.add_seconds('features.cutoff_time', -short) }} then 1 else 0
        end) as double precision) as events_short,
        cast(sum(case when events.event_type = 'purchase' then 1 else 0 end) as double precision)
            as purchases_lookback,
        cast(sum(case
            when events.event_type = 'purchase'
                and events.event_time > {{ shopflow.add_seconds('features.cutoff_time', -short) }} then 1
            else 0
        end) as double precision) as purchases_short

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
        case when recounted.events_lookback > 0
            then (recounted.events_short / {{ short }}) / (recounted.events_lookback / {{ lookback }})
        end as expected_event_ratio,
        case when recounted.purchases_lookback > 0
            then (recounted.purchases_short / {{ short }}) / (recounted.purchases_lookback / {{ lookback }})
        end as expected_purchase_ratio

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
        expected_event_ratio is null
        or abs(expected_event_ratio - event_rate_short_over_lookback) > 1e-9
        or (expected_purchase_ratio is null) <> (purchase_rate_short_over_lookback is null)
        or abs(expected_purchase_ratio - purchase_rate_short_over_lookback) > 1e-9

)

select * from final
