{#
    What each user did with each item before each cutoff: one row per
    (user_id, item_id, cutoff_time) for every pair with an event in the lookback window
    (cutoff_time - lookback, cutoff_time].

    Built on int_user_events_by_cutoff, the one place the feature window is drawn, so a
    purchase after a cutoff can never reach the features of that cutoff (the
    recommendation tests recompute these counts from staging to prove it).
#}

{#- A table, not a view: the recommendation marts and its tests read it once each. -#}
{{ config(materialized='table') }}

with

events as (

    select * from {{ ref('int_user_events_by_cutoff') }}

),

aggregated as (

    select
        user_id,
        item_id,
        cutoff_time,
        max(category_id) as category_id,
        {{ shopflow.count_where("event_type = 'view'") }} as ui_views_lookback,
        {{ shopflow.count_where("event_type = 'cart'") }} as ui_carts_lookback,
        {{ shopflow.count_where("event_type = 'purchase'") }} as ui_purchases_lookback,
        {{ shopflow.count_where("event_type = 'return'") }} as ui_returns_lookback,
        count(*) as ui_events_lookback,
        sum(case when event_type = 'purchase' then quantity else 0 end) as ui_quantity_lookback,
        min(seconds_before_cutoff) as seconds_since_last_event,
        max(seconds_before_cutoff) as seconds_since_first_event,
        min(case when event_type = 'purchase' then seconds_before_cutoff end)
            as seconds_since_last_purchase,
        -- for int_user_intent_features, which aggregates these pairs per (user, cutoff)
        min(case when event_type = 'cart' then seconds_before_cutoff end)
            as seconds_since_last_cart,
        max(case when event_type = 'cart' then price end) as max_cart_price,
        -- the distinct days of the pair (is_first_of_item_day: int_user_events_by_cutoff)
        cast(sum(is_first_of_item_day) as bigint) as ui_active_days_lookback,
        max(event_time) as last_event_time

    from events

    group by user_id, item_id, cutoff_time

),

final as (

    select * from aggregated

)

select * from final
