{#
    Every event paired with every cutoff whose lookback window holds it:
    `lookback_start < event_time <= cutoff_time`. This is the one place the window is
    drawn; user and item features aggregate it and never see events past a cutoff
    (tests/assert_user_features_use_no_future_events.sql recomputes from staging to prove
    it). A table, not a view: a dozen feature families, marts and tests read it, and
    storing the (events x cutoffs) rows once is cheaper than redoing the range join in
    each of them (docs/performance.md).
#}

{{ config(materialized='table') }}

with

events as (

    select * from {{ ref('stg_shop__events') }}

),

cutoffs as (

    select * from {{ ref('int_cutoffs') }}

),

windowed as (

    select
        cutoffs.cutoff_time,
        cutoffs.is_training_cutoff,
        events.event_id,
        events.user_id,
        events.item_id,
        events.order_id,
        events.category_id,
        events.event_type,
        events.price,
        events.quantity,
        events.event_time,
        {{ shopflow.seconds_between('events.event_time', 'cutoffs.cutoff_time') }} as seconds_before_cutoff

    from events

    inner join cutoffs
        on
            events.event_time > cutoffs.lookback_start
            and events.event_time <= cutoffs.cutoff_time

),

final as (

    select
        *,
        case
            when event_type = 'purchase' then coalesce(price, 0) * quantity
            else 0
        end as purchase_amount

    from windowed

)

select * from final
