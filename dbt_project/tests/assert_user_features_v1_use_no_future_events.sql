{#
    No leakage: user_features_v1 (the frozen propensity_v1 mart) may only use events in
    (cutoff_time - lookback, cutoff_time]. The test of user_features before its
    catalogue was generated for the task, pointed at the mart that kept that SQL.

    Recomputes, straight from staging (not through int_user_events_by_cutoff, so a bug
    there cannot hide itself), the number of events, purchases and the purchase amount at
    or before each cutoff within the lookback, and the newest such event. A row fails when
    the mart disagrees with the recount, or when the last event it implies
    (cutoff_time - recency_days) is after the cutoff or is not the newest event at or
    before it. Any mart that reads past its cutoff gets counts or recencies this recount
    cannot produce.
#}

{%- set lookback = var('lookback_seconds') | int -%}
{%- set sample = shopflow.leakage_sample(ref('user_features_v1')) | trim -%}

with

features as (

    select
        user_id,
        cutoff_time,
        events_lookback,
        purchases_lookback,
        monetary_lookback,
        recency_days

    from {{ ref('user_features_v1') }}

    where {{ sample }}

),

events as (

    select
        user_id,
        event_type,
        event_time,
        case when event_type = 'purchase' then coalesce(price, 0) * quantity else 0 end
            as purchase_amount

    from {{ ref('stg_shop__events') }}

    where {{ sample }}

),

recounted as (

    select
        features.user_id,
        features.cutoff_time,
        count(events.event_time) as events_at_or_before_cutoff,
        sum(case when events.event_type = 'purchase' then 1 else 0 end)
            as purchases_at_or_before_cutoff,
        coalesce(sum(events.purchase_amount), 0) as amount_at_or_before_cutoff,
        max(events.event_time) as last_event_at_or_before_cutoff

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
        recounted.events_at_or_before_cutoff,
        recounted.purchases_at_or_before_cutoff,
        recounted.amount_at_or_before_cutoff,
        recounted.last_event_at_or_before_cutoff,
        {{ shopflow.epoch_seconds('features.cutoff_time') }} - features.recency_days * 86400
            as implied_last_event_epoch

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
        events_lookback <> events_at_or_before_cutoff
        or purchases_lookback <> purchases_at_or_before_cutoff
        or abs(monetary_lookback - amount_at_or_before_cutoff) > 1e-6 * (1 + abs(amount_at_or_before_cutoff))
        or recency_days < 0
        or last_event_at_or_before_cutoff is null
        or abs(implied_last_event_epoch - {{ shopflow.epoch_seconds('last_event_at_or_before_cutoff') }}) > 0.001

)

select * from final
