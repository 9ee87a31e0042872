{#
    Item features for recommendations and ranking: one row per (item_id, cutoff_time) for
    every item with at least one event in (cutoff_time - lookback, cutoff_time], from the
    same window as user_features. Prices are over the events that carry one, so they are
    null when none in the window did. Rank 1 is the most purchased item at that cutoff
    (ties: more buyers, more views, then item_id, so the rank is deterministic).
#}

with

events as (

    select * from {{ ref('int_user_events_by_cutoff') }}

),

aggregated as (

    select
        item_id,
        cutoff_time,
        sum(case when event_type = 'view' then 1 else 0 end) as item_views_lookback,
        sum(case when event_type = 'cart' then 1 else 0 end) as item_carts_lookback,
        sum(case when event_type = 'purchase' then 1 else 0 end) as item_purchases_lookback,
        -- distinct buyers: each buyer's first purchase of the item in the window
        sum(is_first_of_item_purchase) as item_buyers_lookback,
        avg(price) as item_avg_price,
        min(price) as item_min_price,
        max(price) as item_max_price

    from events

    group by item_id, cutoff_time

),

typed as (

    select
        item_id,
        cutoff_time,
        cast(item_views_lookback as double precision) as item_views_lookback,
        cast(item_carts_lookback as double precision) as item_carts_lookback,
        cast(item_purchases_lookback as double precision) as item_purchases_lookback,
        cast(item_buyers_lookback as double precision) as item_buyers_lookback,
        cast(item_avg_price as double precision) as item_avg_price,
        cast(item_min_price as double precision) as item_min_price,
        cast(item_max_price as double precision) as item_max_price

    from aggregated

),

final as (

    select
        item_id,
        cutoff_time,
        item_views_lookback,
        item_carts_lookback,
        item_purchases_lookback,
        item_buyers_lookback,
        case
            when item_views_lookback + item_carts_lookback + item_purchases_lookback > 0
                then item_purchases_lookback
                    / (item_views_lookback + item_carts_lookback + item_purchases_lookback)
            else 0.0
        end as item_conversion_rate,
        item_avg_price,
        item_min_price,
        item_max_price,
        cast(
            row_number() over (
                partition by cutoff_time
                order by
                    item_purchases_lookback desc,
                    item_buyers_lookback desc,
                    item_views_lookback desc,
                    {{ shopflow.binary_order('item_id') }}
            ) as integer
        ) as item_popularity_rank

    from typed

)

select * from final
