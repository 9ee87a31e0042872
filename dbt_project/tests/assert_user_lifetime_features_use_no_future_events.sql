{#
    No leakage in the lifetime features: they may use every event at or before the
    cutoff, and none after it.

    Recounts straight from staging (not through int_user_lifetime_by_cutoff, so a bug in
    its buckets or running totals cannot hide itself): events, purchases, distinct
    orders, distinct purchase days, the purchase amount and the first/last event and
    purchase times at or before each cutoff. A row fails when user_features disagrees,
    or has a row for a user without any event at or before its cutoff, or when any
    user with such an event lacks a row at that cutoff (every known customer is scored).
#}

{%- set sample = shopflow.leakage_sample(ref('user_features')) | trim -%}

with

features as (

    select
        user_id,
        cutoff_time,
        recency_days,
        tenure_days,
        days_since_first_purchase,
        days_since_last_purchase,
        purchases_lifetime,
        orders_lifetime,
        purchase_days_lifetime,
        monetary_lifetime

    from {{ ref('user_features') }}

    where {{ sample }}

),

cutoffs as (

    select distinct cutoff_time from {{ ref('int_cutoffs') }}

),

events as (

    select
        user_id,
        event_id,
        order_id,
        event_type,
        event_time,
        case when event_type = 'purchase' then coalesce(price, 0) * quantity else 0 end
            as purchase_amount

    from {{ ref('stg_shop__events') }}

    where {{ sample }}

),

recounted as (

    select
        events.user_id,
        cutoffs.cutoff_time,
        min(events.event_time) as first_event_time,
        max(events.event_time) as last_event_time,
        min(case when events.event_type = 'purchase' then events.event_time end) as first_purchase_time,
        max(case when events.event_type = 'purchase' then events.event_time end) as last_purchase_time,
        sum(case when events.event_type = 'purchase' then 1 else 0 end) as purchases,
        count(distinct case when events.event_type = 'purchase'
            then coalesce(events.order_id, events.event_id) end) as orders,
        count(distinct case when events.event_type = 'purchase'
            then cast(events.event_time as date) end) as purchase_days,
        sum(events.purchase_amount) as amount

    from cutoffs

    inner join events
        on events.event_time <= cutoffs.cutoff_time

    group by events.user_id, cutoffs.cutoff_time

),

{% set days_to = "(" ~ shopflow.epoch_seconds('recounted.cutoff_time') ~ " - " -%}

compared as (

    select
        coalesce(features.user_id, recounted.user_id) as user_id,
        coalesce(features.cutoff_time, recounted.cutoff_time) as cutoff_time,
        features.user_id is null as missing_row,
        recounted.user_id is null as row_without_history,
        abs(features.recency_days * 86400
            - {{ days_to }}{{ shopflow.epoch_seconds('recounted.last_event_time') }})) > 0.001
            as wrong_recency,
        abs(features.tenure_days * 86400
            - {{ days_to }}{{ shopflow.epoch_seconds('recounted.first_event_time') }})) > 0.001
            as wrong_tenure,
        coalesce(abs(features.days_since_first_purchase * 86400
            - {{ days_to }}{{ shopflow.epoch_seconds('recounted.first_purchase_time') }})) > 0.001,
            (features.days_since_first_purchase is null) <> (recounted.first_purchase_time is null))
            as wrong_first_purchase,
        coalesce(abs(features.days_since_last_purchase * 86400
            - {{ days_to }}{{ shopflow.epoch_seconds('recounted.last_purchase_time') }})) > 0.001,
            (features.days_since_last_purchase is null) <> (recounted.last_purchase_time is null))
            as wrong_last_purchase,
        features.purchases_lifetime <> recounted.purchases
        or features.orders_lifetime <> recounted.orders
        or features.purchase_days_lifetime <> recounted.purchase_days
        or abs(features.monetary_lifetime - recounted.amount) > 1e-6 * (1 + abs(recounted.amount))
            as wrong_totals

    from features

    full outer join recounted
        on
            features.user_id = recounted.user_id
            and features.cutoff_time = recounted.cutoff_time

),

final as (

    select *

    from compared

    where
        missing_row
        or row_without_history
        or wrong_recency
        or wrong_tenure
        or wrong_first_purchase
        or wrong_last_purchase
        or wrong_totals

)

select * from final
