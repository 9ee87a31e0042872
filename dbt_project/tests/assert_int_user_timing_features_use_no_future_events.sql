{#
    No leakage, timing family: recounts from staging (not through int_user_events_by_cutoff
    or int_user_event_sequence) the distinct event and purchase instants in
    (cutoff_time - lookback, cutoff_time] and the newest purchase there. The mean of the
    gaps between consecutive instants is (newest - oldest) / (instants - 1), so a row fails
    when a gap mean, or the days since the last purchase implied by
    purchase_recency_over_mean_gap_lookback x purchase_gap_mean, differs from the recount,
    or is null where the recount has one (or the reverse). A model that reads an event
    after the cutoff (or before the lookback) spans other instants.
#}

{{ config(tags=['feature_family']) }}

{%- set lookback = var('lookback_seconds') | int -%}
{%- set sample = shopflow.leakage_sample(ref('int_user_timing_features')) | trim -%}

with

features as (

    select * from {{ ref('int_user_timing_features') }} where {{ sample }}

),

events as (

    select user_id, event_type, event_time from {{ ref('stg_shop__events') }} where {{ sample }}

),

recounted as (

    select
        features.user_id,
        features.cutoff_time,
        count(distinct events.event_time) as instants,
        min(events.event_time) as first_instant,
        max(events.event_time) as last_instant,
        count(distinct case when events.event_type = 'purchase' then events.event_time end)
            as purchase_instants,
        min(case when events.event_type = 'purchase' then events.event_time end) as first_purchase,
        max(case when events.event_type = 'purchase' then events.event_time end) as last_purchase

    from features

    inner join events
        on
            events.user_id = features.user_id
            and events.event_time <= features.cutoff_time
            and events.event_time > {{ shopflow.add_seconds('features.cutoff_time', -lookback) }}

    group by features.user_id, features.cutoff_time

),

expected as (

    select
        user_id,
        cutoff_time,
        case when instants >= 2
            then {{ shopflow.seconds_between('first_instant', 'last_instant') }} / (instants - 1) / 86400.0
        end as event_gap_mean_days,
        case when purchase_instants >= 2
            then {{ shopflow.seconds_between('first_purchase', 'last_purchase') }} / (purchase_instants - 1) / 86400.0
        end as purchase_gap_mean_days,
        {{ shopflow.seconds_between('last_purchase', 'cutoff_time') }} / 86400.0 as days_since_last_purchase

    from recounted

),

compared as (

    select
        features.*,
        expected.event_gap_mean_days,
        expected.purchase_gap_mean_days,
        expected.days_since_last_purchase

    from features

    left join expected
        on
            features.user_id = expected.user_id
            and features.cutoff_time = expected.cutoff_time

),

final as (

    select *

    from compared

    where
        (event_gap_mean_days is null) <> (event_gap_mean_days_lookback is null)
        or abs(event_gap_mean_days - event_gap_mean_days_lookback) > 1e-6
        or (purchase_gap_mean_days is null) <> (purchase_gap_mean_days_lookback is null)
        or abs(purchase_gap_mean_days - purchase_gap_mean_days_lookback) > 1e-6
        or (
            purchase_recency_over_mean_gap_lookback < 100
            and abs(
                purchase_recency_over_mean_gap_lookback * purchase_gap_mean_days_lookback
                - days_since_last_purchase
            ) > 1e-6
        )

)

select * from final
