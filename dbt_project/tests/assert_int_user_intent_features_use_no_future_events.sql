{#
    No leakage, intent family: recounts from staging, item by item, the views, carts and
    purchases in (cutoff_time - lookback, cutoff_time] and the times of the last cart and
    last purchase there. A row fails when the carted-not-bought items, the viewed-only
    items, the repeat-viewed items or days_since_last_cart differ from the recount (or
    are null where it has a value). A cart or purchase after the cutoff would move the
    last cart, or buy an abandoned item.
#}

{{ config(tags=['feature_family']) }}

{%- set lookback = var('lookback_seconds') | int -%}
{%- set sample = shopflow.leakage_sample(ref('int_user_intent_features')) | trim -%}

with

features as (

    select * from {{ ref('int_user_intent_features') }} where {{ sample }}

),

events as (

    select user_id, item_id, event_type, event_time from {{ ref('stg_shop__events') }} where {{ sample }}

),

per_item as (

    select
        features.user_id,
        features.cutoff_time,
        events.item_id,
        sum(case when events.event_type = 'view' then 1 else 0 end) as views,
        sum(case when events.event_type = 'cart' then 1 else 0 end) as carts,
        sum(case when events.event_type = 'purchase' then 1 else 0 end) as purchases,
        max(case when events.event_type = 'cart' then events.event_time end) as last_cart,
        max(case when events.event_type = 'purchase' then events.event_time end) as last_purchase

    from features

    inner join events
        on
            events.user_id = features.user_id
            and events.event_time <= features.cutoff_time
            and events.event_time > {{ shopflow.add_seconds('features.cutoff_time', -lookback) }}

    group by features.user_id, features.cutoff_time, events.item_id

),

recounted as (

    select
        user_id,
        cutoff_time,
        sum(case when carts > 0 and (last_purchase is null or last_purchase < last_cart) then 1 else 0 end)
            as carted_not_bought,
        sum(case when views > 0 and carts = 0 and purchases = 0 then 1 else 0 end) as viewed_only,
        sum(case when views >= 2 then 1 else 0 end) as repeat_viewed,
        max(last_cart) as last_cart

    from per_item

    group by user_id, cutoff_time

),

compared as (

    select
        features.*,
        recounted.carted_not_bought,
        recounted.viewed_only,
        recounted.repeat_viewed,
        {{ shopflow.seconds_between('recounted.last_cart', 'features.cutoff_time') }} / 86400.0
            as expected_days_since_last_cart

    from features

    left join recounted
        on
            features.user_id = recounted.user_id
            and features.cutoff_time = recounted.cutoff_time

),

final as (

    select *

    from compared

    where
        not coalesce(carted_not_bought = carted_not_bought_items_lookback, false)
        or not coalesce(viewed_only = viewed_only_items_lookback, false)
        or not coalesce(repeat_viewed = repeat_viewed_items_lookback, false)
        or (expected_days_since_last_cart is null) <> (days_since_last_cart is null)
        or abs(expected_days_since_last_cart - days_since_last_cart) > 1e-6

)

select * from final
