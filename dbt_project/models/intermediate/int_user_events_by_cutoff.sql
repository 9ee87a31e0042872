{#
    Every event paired with every cutoff whose lookback window holds it:
    `lookback_start < event_time <= cutoff_time`. This is the one place the window is
    drawn; user and item features aggregate it and never see events past a cutoff
    (tests/assert_user_features_use_no_future_events.sql recomputes from staging to prove
    it). A table, not a view: a dozen feature families, marts and tests read it, and
    storing the (events x cutoffs) rows once is cheaper than redoing the range join in
    each of them (docs/performance.md).

    Per-event history from int_user_event_sequence rides along (it only looks backwards,
    so it cannot bring in anything after a cutoff): the session and the gaps the session
    and timing families read, and first-in-window flags. is_first_of_<kind> is 1 on the
    one event of the window that opens its kind -- its user's item, day, item and day,
    category, order (purchases), purchase of the item -- i.e. whose previous event of the
    same kind is before the window (or missing). Summing a flag per group is exactly the
    `count(distinct ...)` of that kind in the window, without hashing every row again.
#}

{{ config(materialized='table') }}

with

events as (

    select
        staged.*,
        event_sequence.session_number,
        event_sequence.gap_seconds,
        event_sequence.purchase_gap_seconds,
        event_sequence.previous_item_time,
        event_sequence.previous_same_day_time,
        event_sequence.previous_item_same_day_time,
        event_sequence.previous_category_time,
        event_sequence.previous_order_line_time,
        event_sequence.previous_item_purchase_time

    from {{ ref('stg_shop__events') }} as staged

    inner join {{ ref('int_user_event_sequence') }} as event_sequence
        on staged.event_id = event_sequence.event_id

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
        {{ shopflow.seconds_between('events.event_time', 'cutoffs.cutoff_time') }} as seconds_before_cutoff,
        events.session_number,
        events.gap_seconds,
        events.purchase_gap_seconds,
        {%- for kind, previous, condition in [
            ('item', 'previous_item_time', none),
            ('day', 'previous_same_day_time', none),
            ('item_day', 'previous_item_same_day_time', none),
            ('category', 'previous_category_time', 'events.category_id is not null'),
            ('order', 'previous_order_line_time', "events.event_type = 'purchase'"),
            ('item_purchase', 'previous_item_purchase_time', "events.event_type = 'purchase'"),
        ] %}
        case
            when {% if condition %}{{ condition }} and {% endif -%}
                (events.{{ previous }} is null or events.{{ previous }} <= cutoffs.lookback_start)
                then 1
            else 0
        end as is_first_of_{{ kind }}{{ ',' if not loop.last }}
        {%- endfor %}

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
