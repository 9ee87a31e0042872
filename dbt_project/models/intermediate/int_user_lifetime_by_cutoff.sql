{#
    Lifetime history per (user_id, cutoff_time): every user with an event at or before a
    cutoff gets a row at it, dormant ones included (the lookback bounds the windowed
    features, not who is scored).

    Built without an events x cutoffs cross join: each event lands in exactly one bucket,
    (previous cutoff, cutoff], is summed per (user, bucket), and running totals over the
    buckets up to each cutoff give the lifetime aggregates. Orders and purchase days count
    in the bucket of their first purchase line, so running sums of them stay distinct
    counts. Point in time: a bucket only holds events with event_time <= its cutoff, and
    a cutoff's totals only add buckets at or before it
    (tests/assert_user_lifetime_features_use_no_future_events.sql recounts from staging).
#}

{#- A table, not a view: user_features and four data tests read it, which would each
    redo the window functions over every event. -#}
{{ config(materialized='table') }}

with

events as (

    select
        user_id,
        event_id,
        event_type,
        event_time,
        case
            when event_type = 'purchase' then coalesce(price, 0) * quantity
            else 0
        end as purchase_amount,
        row_number() over (
            partition by user_id, event_type, coalesce(order_id, event_id)
            order by event_time, event_id
        ) as line_of_order,
        row_number() over (
            partition by user_id, event_type, cast(event_time as date)
            order by event_time, event_id
        ) as line_of_day

    from {{ ref('stg_shop__events') }}

),

cutoff_times as (

    select distinct cutoff_time from {{ ref('int_cutoffs') }}

),

buckets as (

    select
        cutoff_time,
        coalesce(
            lag(cutoff_time) over (order by cutoff_time),
            cast('1900-01-01 00:00:00' as timestamp)
        ) as previous_cutoff_time

    from cutoff_times

),

bucketed as (

    select
        buckets.cutoff_time,
        events.*

    from events

    inner join buckets
        on
            events.event_time > buckets.previous_cutoff_time
            and events.event_time <= buckets.cutoff_time

),

per_bucket as (

    select
        user_id,
        cutoff_time,
        max(event_time) as last_event_time,
        min(case when event_type = 'purchase' then event_time end) as first_purchase_time,
        max(case when event_type = 'purchase' then event_time end) as last_purchase_time,
        sum(case when event_type = 'purchase' then 1 else 0 end) as purchases,
        sum(case when event_type = 'purchase' and line_of_order = 1 then 1 else 0 end) as orders,
        sum(case when event_type = 'purchase' and line_of_day = 1 then 1 else 0 end)
            as purchase_days,
        sum(purchase_amount) as monetary

    from bucketed

    group by user_id, cutoff_time

),

users as (

    select
        user_id,
        min(event_time) as first_event_time

    from events

    group by user_id

),

grid as (

    select
        users.user_id,
        cutoff_times.cutoff_time,
        users.first_event_time

    from users

    inner join cutoff_times
        on users.first_event_time <= cutoff_times.cutoff_time

),

joined as (

    select
        grid.user_id,
        grid.cutoff_time,
        grid.first_event_time,
        per_bucket.last_event_time,
        per_bucket.first_purchase_time,
        per_bucket.last_purchase_time,
        coalesce(per_bucket.purchases, 0) as purchases,
        coalesce(per_bucket.orders, 0) as orders,
        coalesce(per_bucket.purchase_days, 0) as purchase_days,
        coalesce(per_bucket.monetary, 0) as monetary

    from grid

    left join per_bucket
        on
            grid.user_id = per_bucket.user_id
            and grid.cutoff_time = per_bucket.cutoff_time

),

final as (

    select
        user_id,
        cutoff_time,
        first_event_time,
        max(last_event_time) over history as last_event_time,
        min(first_purchase_time) over history as first_purchase_time,
        max(last_purchase_time) over history as last_purchase_time,
        sum(purchases) over history as purchases_lifetime,
        sum(orders) over history as orders_lifetime,
        sum(purchase_days) over history as purchase_days_lifetime,
        sum(monetary) over history as monetary_lifetime

    from joined

    window history as (
        partition by user_id
        order by cutoff_time
        rows between unbounded preceding and current row
    )

)

select * from final
