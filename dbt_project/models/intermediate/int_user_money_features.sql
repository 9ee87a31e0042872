{#
    Money family: the price level a user shops at and what they send back, one row per
    (user_id, cutoff_time) of int_user_events_by_cutoff.

    Price index = unit price / the point-in-time average unit price of the event's
    category, averaged over the user's viewed (or bought) events with a positive price.
    The category average is over every user's priced events (price > 0) of the category
    in the same window (lookback_start, cutoff_time], never after the cutoff; an event
    without a category is compared with the whole shop's average in that window. 1 = the
    category's usual price level; >= 0 and at most the number of priced events in the
    reference group, so bounded.

    Returns (staging turns a negative-quantity purchase into a 'return'): value =
    price x |quantity| (a missing or negative price counts 0); share = returned value /
    (bought value + returned value).

    Missing values: a price index is NULL without a viewed (bought) event with a positive
    price; returns_value_lookback is 0 without returns; the share is NULL when the
    window holds neither purchase nor return value.
#}

{#- A table, not a view like the other intermediates: user_features and this model's tests
    (its invariants and leakage test) then read it instead of recomputing it each. -#}
{{ config(materialized='table') }}

with

events as (

    select * from {{ ref('int_user_events_by_cutoff') }}

),

priced as (

    select cutoff_time, category_id, price

    from events

    where price > 0

),

category_prices as (

    select cutoff_time, category_id, avg(price) as category_avg_price

    from priced

    where category_id is not null

    group by cutoff_time, category_id

),

shop_prices as (

    select cutoff_time, avg(price) as shop_avg_price

    from priced

    group by cutoff_time

),

indexed as (

    select
        events.user_id,
        events.cutoff_time,
        events.event_type,
        events.purchase_amount,
        case
            when events.event_type = 'return'
                then greatest(coalesce(events.price, 0), 0) * abs(events.quantity)
            else 0
        end as return_amount,
        case
            when events.price > 0
                then events.price / coalesce(category_prices.category_avg_price, shop_prices.shop_avg_price)
        end as price_index

    from events

    left join category_prices
        on
            events.cutoff_time = category_prices.cutoff_time
            and events.category_id = category_prices.category_id

    left join shop_prices
        on events.cutoff_time = shop_prices.cutoff_time

),

aggregated as (

    select
        user_id,
        cutoff_time,
        avg(case when event_type = 'view' then price_index end) as viewed_price_index,
        avg(case when event_type = 'purchase' then price_index end) as bought_price_index,
        sum(return_amount) as returns_value,
        sum(greatest(purchase_amount, 0)) as bought_value

    from indexed

    group by user_id, cutoff_time

),

final as (

    select
        user_id,
        cutoff_time,
        cast(viewed_price_index as double precision) as viewed_price_index_lookback,
        cast(bought_price_index as double precision) as bought_price_index_lookback,
        cast(returns_value as double precision) as returns_value_lookback,
        cast(
            case
                when bought_value + returns_value > 0
                    then returns_value / (bought_value + returns_value)
            end
            as double precision
        ) as returns_value_share_lookback

    from aggregated

)

select * from final
