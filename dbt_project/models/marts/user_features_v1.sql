{#
    The propensity_v1 features (shopflow.features.schema.LEGACY_USER_CATALOGUE), frozen:
    the SQL of user_features before the catalogue was generated for the task, unchanged in
    meaning, so a champion trained on feature service propensity_v1 keeps being served and
    is scored through its own service in gate 2. New features go to user_features
    (propensity_v2), never here.

    One row per (user_id, cutoff_time) for every user with at least one event in
    (cutoff_time - lookback, cutoff_time], at every cutoff (training and serving: gate 2
    scores the champion on the challenger's test cutoffs).

    All history comes from int_user_events_by_cutoff, so nothing after a cutoff and
    nothing older than the lookback is ever seen (docs/DESIGN.md §3: "features use at most
    this much history"). Hence tenure_days is tenure *within the lookback*. The 7d/30d
    windows are capped at the lookback. Every feature is a non-null DOUBLE: rates and
    averages are 0 when their denominator is, and days_since_last_purchase is the
    lookback in days when there was no purchase, so every model family can read them
    as they are.
#}

{%- set lookback = var('lookback_seconds') | int -%}
{%- set window_7d = [7 * 86400, lookback] | min -%}
{%- set window_30d = [30 * 86400, lookback] | min -%}

with

events as (

    select * from {{ ref('int_user_events_by_cutoff') }}

),

aggregated as (

    select
        user_id,
        cutoff_time,

        ----------  timing
        min(seconds_before_cutoff) as seconds_since_last_event,
        max(seconds_before_cutoff) as seconds_since_first_event,
        min(case when event_type = 'purchase' then seconds_before_cutoff end)
            as seconds_since_last_purchase,

        ----------  activity
        count(*) as events_lookback,
        sum(case when seconds_before_cutoff < {{ window_7d }} then 1 else 0 end) as events_7d,
        sum(case when seconds_before_cutoff < {{ window_30d }} then 1 else 0 end) as events_30d,
        sum(case when event_type = 'view' then 1 else 0 end) as views_lookback,
        sum(case when event_type = 'cart' then 1 else 0 end) as carts_lookback,
        sum(is_first_of_item) as distinct_items_lookback,
        sum(is_first_of_category) as distinct_categories_lookback,
        sum(is_first_of_day) as active_days_lookback,

        ----------  buying
        sum(case when event_type = 'purchase' and seconds_before_cutoff < {{ window_7d }} then 1 else 0 end)
            as purchases_7d,
        sum(case when event_type = 'purchase' and seconds_before_cutoff < {{ window_30d }} then 1 else 0 end)
            as purchases_30d,
        sum(case when event_type = 'purchase' then 1 else 0 end) as purchases_lookback,
        sum(case when event_type = 'return' then 1 else 0 end) as returns_lookback,
        -- a purchase without an order id is an order of its own
        sum(is_first_of_order)
            as orders_lookback,
        sum(case when event_type = 'purchase' then quantity else 0 end) as units_lookback,
        sum(case when seconds_before_cutoff < {{ window_30d }} then purchase_amount else 0 end)
            as monetary_30d,
        sum(purchase_amount) as monetary_lookback

    from events

    group by user_id, cutoff_time

),

typed as (

    select
        user_id,
        cutoff_time,
        cast(seconds_since_last_event as double precision) as seconds_since_last_event,
        cast(seconds_since_first_event as double precision) as seconds_since_first_event,
        cast(seconds_since_last_purchase as double precision) as seconds_since_last_purchase,
        cast(events_7d as double precision) as events_7d,
        cast(events_30d as double precision) as events_30d,
        cast(events_lookback as double precision) as events_lookback,
        cast(views_lookback as double precision) as views_lookback,
        cast(carts_lookback as double precision) as carts_lookback,
        cast(purchases_7d as double precision) as purchases_7d,
        cast(purchases_30d as double precision) as purchases_30d,
        cast(purchases_lookback as double precision) as purchases_lookback,
        cast(returns_lookback as double precision) as returns_lookback,
        cast(orders_lookback as double precision) as orders_lookback,
        cast(units_lookback as double precision) as units_lookback,
        cast(monetary_30d as double precision) as monetary_30d,
        cast(monetary_lookback as double precision) as monetary_lookback,
        cast(distinct_items_lookback as double precision) as distinct_items_lookback,
        cast(distinct_categories_lookback as double precision) as distinct_categories_lookback,
        cast(active_days_lookback as double precision) as active_days_lookback

    from aggregated

),

final as (

    select
        user_id,
        cutoff_time,
        seconds_since_last_event / 86400.0 as recency_days,
        coalesce(seconds_since_last_purchase, {{ lookback }}) / 86400.0 as days_since_last_purchase,
        seconds_since_first_event / 86400.0 as tenure_days,
        events_7d,
        events_30d,
        events_lookback,
        views_lookback,
        carts_lookback,
        purchases_7d,
        purchases_30d,
        purchases_lookback,
        returns_lookback,
        orders_lookback,
        monetary_30d,
        monetary_lookback,
        case when orders_lookback > 0 then monetary_lookback / orders_lookback else 0.0 end
            as avg_order_value,
        case when orders_lookback > 0 then units_lookback / orders_lookback else 0.0 end
            as avg_basket_size,
        case
            when views_lookback + carts_lookback > 0
                then carts_lookback / (views_lookback + carts_lookback)
            else 0.0
        end as cart_rate,
        case
            when views_lookback + carts_lookback + purchases_lookback > 0
                then purchases_lookback / (views_lookback + carts_lookback + purchases_lookback)
            else 0.0
        end as conversion_rate,
        case
            when purchases_lookback + returns_lookback > 0
                then returns_lookback / (purchases_lookback + returns_lookback)
            else 0.0
        end as return_rate,
        distinct_items_lookback,
        distinct_categories_lookback,
        active_days_lookback,
        cast(case when orders_lookback >= 2 then 1 else 0 end as double precision) as is_returning_buyer

    from typed

)

select * from final
