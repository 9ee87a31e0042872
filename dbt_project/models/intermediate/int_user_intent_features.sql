{#
    Intent family: what the user wanted and has not bought yet, one row per (user_id,
    cutoff_time) of int_user_events_by_cutoff, from the window's events only.

    An item is "carted, not bought" when its last cart in the window is later than its
    last purchase in the window (or it has no purchase there); a purchase at the same
    instant as the cart counts as bought. Its value is the highest unit price its carts
    carried (a cart without a price adds 0). Shops without carts (purchase-only or
    view-only data) still have the view-based features ("viewed only": viewed, neither
    carted nor bought, in the window).

    The per-item counts come from int_user_item_events_by_cutoff (the same window's
    events per (user, item, cutoff)), so the events are not grouped per item twice.

    Missing values: the counts and the value are 0 when nothing qualifies;
    days_since_last_cart is NULL without a cart in the window.
#}

{#- A table, not a view like the other intermediates: user_features and this model's tests
    (its invariants and leakage test) then read it instead of recomputing it each. -#}
{{ config(materialized='table') }}

with

per_item as (

    -- the window's events of each (user, cutoff, item), already aggregated once
    select
        user_id,
        cutoff_time,
        item_id,
        ui_views_lookback as views,
        ui_carts_lookback as carts,
        ui_purchases_lookback as purchases,
        seconds_since_last_cart as last_cart_seconds,
        seconds_since_last_purchase as last_purchase_seconds,
        max_cart_price as cart_price

    from {{ ref('int_user_item_events_by_cutoff') }}

),

flagged as (

    select
        *,
        case
            when carts > 0 and (last_purchase_seconds is null or last_purchase_seconds > last_cart_seconds)
                then 1
            else 0
        end as is_carted_not_bought

    from per_item

),

aggregated as (

    select
        user_id,
        cutoff_time,
        sum(is_carted_not_bought) as carted_not_bought_items,
        sum(case when is_carted_not_bought = 1 then coalesce(cart_price, 0) else 0 end)
            as carted_not_bought_value,
        sum(case when views > 0 and carts = 0 and purchases = 0 then 1 else 0 end)
            as viewed_only_items,
        sum(case when views >= 2 then 1 else 0 end) as repeat_viewed_items,
        max(views) as max_views_of_one_item,
        min(last_cart_seconds) as seconds_since_last_cart

    from flagged

    group by user_id, cutoff_time

),

final as (

    select
        user_id,
        cutoff_time,
        cast(carted_not_bought_items as double precision) as carted_not_bought_items_lookback,
        cast(carted_not_bought_value as double precision) as carted_not_bought_value_lookback,
        cast(viewed_only_items as double precision) as viewed_only_items_lookback,
        cast(repeat_viewed_items as double precision) as repeat_viewed_items_lookback,
        cast(max_views_of_one_item as double precision) as max_views_of_one_item_lookback,
        cast(seconds_since_last_cart / 86400.0 as double precision) as days_since_last_cart

    from aggregated

)

select * from final
