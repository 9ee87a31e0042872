{#
    Purchase-propensity features: one row per (user_id, cutoff_time) for every user with
    at least one event in (cutoff_time - lookback, cutoff_time].

    All history comes from int_user_events_by_cutoff, so nothing after a cutoff and
    nothing older than the lookback is ever seen (DESIGN.md §3: "features use at most
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
        count(distinct item_id) as distinct_items_lookback,
        count(distinct category_id) as distinct_categories_lookback,
        count(distinct cast(event_time as date)) as active_days_lookback,

        ----------  buying
        sum(case when event_type = 'purchase' and seconds_before_cutoff < {{ window_7d }} then 1 else 0 end)
            as purchases_7d,
        sum(case when event_type = 'purchase' and seconds_before_cutoff < {{ window_30d }} then 1 else 0 end)
            as purchases_30d,
        sum(case when event_type = 'purchase' then 1 else 0 end) as purchases_lookback,
        sum(case when event_type = 'return' then 1 else 0 end) as returns_lookback,
        -- a purchase without an order id is an order of its own
        count(distinct case when event_type = 'purchase' then coalesce(order_id, event_id) end)
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

----------  feature families (one intermediate model each, same keys as `typed`). Unlike the
----------  base features, a family feature is NULL where undefined (see its description).
families as (

    select
        timing.user_id as family_user_id,
        timing.cutoff_time as family_cutoff_time,
        timing.event_gap_mean_days_lookback,
        timing.event_gap_std_days_lookback,
        timing.event_gap_cv_lookback,
        timing.purchase_gap_mean_days_lookback,
        timing.purchase_gap_std_days_lookback,
        timing.purchase_gap_cv_lookback,
        timing.purchase_recency_over_mean_gap_lookback,
        trend.event_rate_short_over_lookback,
        trend.purchase_rate_short_over_lookback,
        trend.monetary_rate_short_over_lookback,
        intent.carted_not_bought_items_lookback,
        intent.carted_not_bought_value_lookback,
        intent.viewed_only_items_lookback,
        intent.repeat_viewed_items_lookback,
        intent.max_views_of_one_item_lookback,
        intent.days_since_last_cart,
        session.sessions_lookback,
        session.events_per_session_lookback,
        session.mean_session_length_days_lookback,
        session.last_session_events,
        session.last_session_length_days,
        session.days_since_last_session_start,
        context.touched_item_popularity_lookback,
        context.touched_item_conversion_rate_lookback,
        context.touched_category_conversion_rate_lookback,
        context.top_category_share_lookback,
        time_profile.hour_sin_mean_lookback,
        time_profile.hour_cos_mean_lookback,
        time_profile.hour_concentration_lookback,
        time_profile.weekday_sin_mean_lookback,
        time_profile.weekday_cos_mean_lookback,
        time_profile.weekend_share_lookback,
        time_profile.night_share_lookback,
        money.viewed_price_index_lookback,
        money.bought_price_index_lookback,
        money.returns_value_lookback,
        money.returns_value_share_lookback

    from {{ ref('int_user_timing_features') }} as timing

    left join {{ ref('int_user_trend_features') }} as trend
        on
            timing.user_id = trend.user_id
            and timing.cutoff_time = trend.cutoff_time

    left join {{ ref('int_user_intent_features') }} as intent
        on
            timing.user_id = intent.user_id
            and timing.cutoff_time = intent.cutoff_time

    left join {{ ref('int_user_session_features') }} as session
        on
            timing.user_id = session.user_id
            and timing.cutoff_time = session.cutoff_time

    left join {{ ref('int_user_context_features') }} as context
        on
            timing.user_id = context.user_id
            and timing.cutoff_time = context.cutoff_time

    left join {{ ref('int_user_time_profile_features') }} as time_profile
        on
            timing.user_id = time_profile.user_id
            and timing.cutoff_time = time_profile.cutoff_time

    left join {{ ref('int_user_money_features') }} as money
        on
            timing.user_id = money.user_id
            and timing.cutoff_time = money.cutoff_time

),
----------  end of feature families

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
        cast(case when orders_lookback >= 2 then 1 else 0 end as double precision) as is_returning_buyer,
        -- feature families (to the end of the select)
        event_gap_mean_days_lookback,
        event_gap_std_days_lookback,
        event_gap_cv_lookback,
        purchase_gap_mean_days_lookback,
        purchase_gap_std_days_lookback,
        purchase_gap_cv_lookback,
        purchase_recency_over_mean_gap_lookback,
        event_rate_short_over_lookback,
        purchase_rate_short_over_lookback,
        monetary_rate_short_over_lookback,
        carted_not_bought_items_lookback,
        carted_not_bought_value_lookback,
        viewed_only_items_lookback,
        repeat_viewed_items_lookback,
        max_views_of_one_item_lookback,
        days_since_last_cart,
        sessions_lookback,
        events_per_session_lookback,
        mean_session_length_days_lookback,
        last_session_events,
        last_session_length_days,
        days_since_last_session_start,
        touched_item_popularity_lookback,
        touched_item_conversion_rate_lookback,
        touched_category_conversion_rate_lookback,
        top_category_share_lookback,
        hour_sin_mean_lookback,
        hour_cos_mean_lookback,
        hour_concentration_lookback,
        weekday_sin_mean_lookback,
        weekday_cos_mean_lookback,
        weekend_share_lookback,
        night_share_lookback,
        viewed_price_index_lookback,
        bought_price_index_lookback,
        returns_value_lookback,
        returns_value_share_lookback

    from typed

    left join families
        on
            typed.user_id = families.family_user_id
            and typed.cutoff_time = families.family_cutoff_time

)

select * from final
