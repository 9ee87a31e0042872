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
        count(distinct case when event_type = 'purchase' then coalesce(order_id, event_id) end)
            as orders_lookback,
        sum(case when event_type = 'purchase' then quantity else 0 end) as units_lookback,
        sum(purchase_amount) as monetary_lookback,
        count(distinct item_id) as distinct_items_lookback,
        count(distinct category_id) as distinct_categories_lookback,
        count(distinct cast(event_time as date)) as active_days_lookback

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
        cast(case when orders_lifetime >= 2 then 1 else 0 end as double precision) as is_returning_buyer

    from joined

)

select * from final
