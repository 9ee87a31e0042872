{#
    Purchase-propensity features: one row per (user_id, cutoff_time) for every user with
    at least one event at or before cutoff_time, dormant users included.

    Three parts (shopflow.features.schema.user_feature_catalogue lists them in this order):
    - lifetime history from int_user_lifetime_by_cutoff (every event at or before the
      cutoff): recency, tenure, first/last purchase, purchases, orders, purchase days and
      money since the first event;
    - windowed families over the task's windows (var feature_window_seconds, shortest
      first, the last being the lookback), named by shopflow.window_suffix: events_7d,
      purchases_30d, monetary_90d, ...;
    - features over the whole lookback from int_user_events_by_cutoff (views, carts,
      returns, orders, rates, breadth), 0 for a user without events in the lookback.
    Nothing after a cutoff is ever read. days_since_first_purchase and
    days_since_last_purchase are NULL when the user never bought (trees read NULL, the
    baseline and the MLP impute); every other feature is a non-null DOUBLE, rates and
    averages being 0 when their denominator is.
#}

{%- set windows = shopflow.feature_windows() -%}

with

events as (

    select * from {{ ref('int_user_events_by_cutoff') }}

),

lifetime as (

    select * from {{ ref('int_user_lifetime_by_cutoff') }}

),

aggregated as (

    select
        user_id,
        cutoff_time,

        ----------  the task's windows (seconds_before_cutoff < lookback for every event here)
        {%- for w in windows %}
        sum(case when seconds_before_cutoff < {{ w }} then 1 else 0 end)
            as events_{{ shopflow.window_suffix(w) }},
        {%- endfor %}
        {%- for w in windows %}
        sum(case when event_type = 'purchase' and seconds_before_cutoff < {{ w }} then 1 else 0 end)
            as purchases_{{ shopflow.window_suffix(w) }},
        {%- endfor %}
        {%- for w in windows %}
        sum(case when seconds_before_cutoff < {{ w }} then purchase_amount else 0 end)
            as monetary_{{ shopflow.window_suffix(w) }},
        {%- endfor %}

        ----------  the lookback
        sum(case when event_type = 'view' then 1 else 0 end) as views_lookback,
        sum(case when event_type = 'cart' then 1 else 0 end) as carts_lookback,
        sum(case when event_type = 'purchase' then 1 else 0 end) as purchases_lookback,
        sum(case when event_type = 'return' then 1 else 0 end) as returns_lookback,
        -- a purchase without an order id is an order of its own
        sum(is_first_of_order)
            as orders_lookback,
        sum(case when event_type = 'purchase' then quantity else 0 end) as units_lookback,
        sum(purchase_amount) as monetary_lookback,
        sum(is_first_of_item) as distinct_items_lookback,
        sum(is_first_of_category) as distinct_categories_lookback,
        sum(is_first_of_day) as active_days_lookback

    from events

    group by user_id, cutoff_time

),

joined as (

    select
        lifetime.user_id,
        lifetime.cutoff_time,
        {{ shopflow.seconds_between('lifetime.last_event_time', 'lifetime.cutoff_time') }}
            as seconds_since_last_event,
        {{ shopflow.seconds_between('lifetime.first_event_time', 'lifetime.cutoff_time') }}
            as seconds_since_first_event,
        case when lifetime.first_purchase_time is not null then
            {{ shopflow.seconds_between('lifetime.first_purchase_time', 'lifetime.cutoff_time') }}
        end as seconds_since_first_purchase,
        case when lifetime.last_purchase_time is not null then
            {{ shopflow.seconds_between('lifetime.last_purchase_time', 'lifetime.cutoff_time') }}
        end as seconds_since_last_purchase,
        cast(lifetime.purchases_lifetime as double precision) as purchases_lifetime,
        cast(lifetime.orders_lifetime as double precision) as orders_lifetime,
        cast(lifetime.purchase_days_lifetime as double precision) as purchase_days_lifetime,
        cast(lifetime.monetary_lifetime as double precision) as monetary_lifetime,
        {%- for prefix in ['events', 'purchases', 'monetary'] %}
        {%- for w in windows %}
        cast(coalesce(aggregated.{{ prefix }}_{{ shopflow.window_suffix(w) }}, 0) as double precision)
            as {{ prefix }}_{{ shopflow.window_suffix(w) }},
        {%- endfor %}
        {%- endfor %}
        cast(coalesce(aggregated.views_lookback, 0) as double precision) as views_lookback,
        cast(coalesce(aggregated.carts_lookback, 0) as double precision) as carts_lookback,
        cast(coalesce(aggregated.purchases_lookback, 0) as double precision) as purchases_lookback,
        cast(coalesce(aggregated.returns_lookback, 0) as double precision) as returns_lookback,
        cast(coalesce(aggregated.orders_lookback, 0) as double precision) as orders_lookback,
        cast(coalesce(aggregated.units_lookback, 0) as double precision) as units_lookback,
        cast(coalesce(aggregated.monetary_lookback, 0) as double precision) as monetary_lookback,
        cast(coalesce(aggregated.distinct_items_lookback, 0) as double precision)
            as distinct_items_lookback,
        cast(coalesce(aggregated.distinct_categories_lookback, 0) as double precision)
            as distinct_categories_lookback,
        cast(coalesce(aggregated.active_days_lookback, 0) as double precision)
            as active_days_lookback

    from lifetime

    left join aggregated
        on
            lifetime.user_id = aggregated.user_id
            and lifetime.cutoff_time = aggregated.cutoff_time

),

----------  feature families (one intermediate model each, keyed like `joined`). Unlike the
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
        seconds_since_first_event / 86400.0 as tenure_days,
        seconds_since_first_purchase / 86400.0 as days_since_first_purchase,
        seconds_since_last_purchase / 86400.0 as days_since_last_purchase,
        purchases_lifetime,
        orders_lifetime,
        purchase_days_lifetime,
        monetary_lifetime,
        {%- for prefix in ['events', 'purchases', 'monetary'] %}
        {%- for w in windows %}
        {{ prefix }}_{{ shopflow.window_suffix(w) }},
        {%- endfor %}
        {%- endfor %}
        views_lookback,
        carts_lookback,
        returns_lookback,
        orders_lookback,
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
        cast(case when orders_lifetime >= 2 then 1 else 0 end as double precision) as is_returning_buyer,
        -- feature families (to the end of the select); a customer without events in the
        -- lookback (dormant) has no family row: counts, rates, shares and the time profile
        -- are 0 for them, the last session start is their last event, the rest stays NULL
        event_gap_mean_days_lookback,
        event_gap_std_days_lookback,
        event_gap_cv_lookback,
        purchase_gap_mean_days_lookback,
        purchase_gap_std_days_lookback,
        purchase_gap_cv_lookback,
        purchase_recency_over_mean_gap_lookback,
        coalesce(event_rate_short_over_lookback, 0.0) as event_rate_short_over_lookback,
        purchase_rate_short_over_lookback,
        monetary_rate_short_over_lookback,
        coalesce(carted_not_bought_items_lookback, 0.0) as carted_not_bought_items_lookback,
        coalesce(carted_not_bought_value_lookback, 0.0) as carted_not_bought_value_lookback,
        coalesce(viewed_only_items_lookback, 0.0) as viewed_only_items_lookback,
        coalesce(repeat_viewed_items_lookback, 0.0) as repeat_viewed_items_lookback,
        coalesce(max_views_of_one_item_lookback, 0.0) as max_views_of_one_item_lookback,
        days_since_last_cart,
        coalesce(sessions_lookback, 0.0) as sessions_lookback,
        coalesce(events_per_session_lookback, 0.0) as events_per_session_lookback,
        coalesce(mean_session_length_days_lookback, 0.0) as mean_session_length_days_lookback,
        coalesce(last_session_events, 0.0) as last_session_events,
        coalesce(last_session_length_days, 0.0) as last_session_length_days,
        coalesce(days_since_last_session_start, seconds_since_last_event / 86400.0)
            as days_since_last_session_start,
        coalesce(touched_item_popularity_lookback, 0.0) as touched_item_popularity_lookback,
        touched_item_conversion_rate_lookback,
        touched_category_conversion_rate_lookback,
        top_category_share_lookback,
        -- the time profile is built for every task; a task whose windows are shorter than
        -- its cycle leaves it out of the catalogue (shopflow.features.schema.PROFILE_CYCLES)
        coalesce(hour_sin_mean_lookback, 0.0) as hour_sin_mean_lookback,
        coalesce(hour_cos_mean_lookback, 0.0) as hour_cos_mean_lookback,
        coalesce(hour_concentration_lookback, 0.0) as hour_concentration_lookback,
        coalesce(weekday_sin_mean_lookback, 0.0) as weekday_sin_mean_lookback,
        coalesce(weekday_cos_mean_lookback, 0.0) as weekday_cos_mean_lookback,
        coalesce(weekend_share_lookback, 0.0) as weekend_share_lookback,
        coalesce(night_share_lookback, 0.0) as night_share_lookback,
        viewed_price_index_lookback,
        bought_price_index_lookback,
        coalesce(returns_value_lookback, 0.0) as returns_value_lookback,
        returns_value_share_lookback

    from joined

    left join families
        on
            joined.user_id = families.family_user_id
            and joined.cutoff_time = families.family_cutoff_time

)

select * from final
