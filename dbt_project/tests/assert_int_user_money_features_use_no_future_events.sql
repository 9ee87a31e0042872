{#
    No leakage, money family: recomputes from staging the returned value and the price
    index of bought items, with each category's mean price over every user's priced
    events in (cutoff_time - lookback, cutoff_time] (the shop's mean for events without a
    category). A row fails when returns_value_lookback or bought_price_index_lookback
    differ from the recount (or are null where it has a value, or the reverse): a
    category mean or a return that saw events after the cutoff differs.
#}

{{ config(tags=['feature_family']) }}

{%- set lookback = var('lookback_seconds') | int -%}
{%- set sample = shopflow.leakage_sample(ref('int_user_money_features')) | trim -%}

with

features as (

    select * from {{ ref('int_user_money_features') }} where {{ sample }}

),

cutoffs as (

    select distinct cutoff_time from features

),

events as (

    select user_id, category_id, event_type, event_time, price, quantity

    from {{ ref('stg_shop__events') }}

),

windowed as (

    select cutoffs.cutoff_time, events.*

    from cutoffs

    inner join events
        on
            events.event_time <= cutoffs.cutoff_time
            and events.event_time > {{ shopflow.add_seconds('cutoffs.cutoff_time', -lookback) }}

),

category_means as (

    select cutoff_time, category_id, avg(price) as mean_price

    from windowed

    where price > 0 and category_id is not null

    group by cutoff_time, category_id

),

shop_means as (

    select cutoff_time, avg(price) as mean_price from windowed where price > 0 group by cutoff_time

),

recounted as (

    select
        windowed.user_id,
        windowed.cutoff_time,
        sum(case
            when windowed.event_type = 'return' and windowed.price > 0
                then windowed.price * abs(windowed.quantity)
            else 0
        end) as returns_value,
        avg(case
            when windowed.event_type = 'purchase' and windowed.price > 0
                then windowed.price / coalesce(category_means.mean_price, shop_means.mean_price)
        end) as bought_index

    from windowed

    left join category_means
        on
            windowed.cutoff_time = category_means.cutoff_time
            and windowed.category_id = category_means.category_id

    left join shop_means on windowed.cutoff_time = shop_means.cutoff_time

    where {{ sample }}

    group by windowed.user_id, windowed.cutoff_time

),

compared as (

    select features.*, recounted.returns_value, recounted.bought_index

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
        not coalesce(abs(returns_value - returns_value_lookback) < 1e-6, false)
        or (bought_index is null) <> (bought_price_index_lookback is null)
        or abs(bought_index - bought_price_index_lookback) > 1e-9

)

select * from final
