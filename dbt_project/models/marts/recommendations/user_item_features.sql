{#
    User x item features for ranking recommendations: one row per
    (user_id, item_id, cutoff_time) for every pair the user touched in the lookback
    window (the "recently interacted" candidates; the other candidate sources -- co-
    purchase neighbours, category favourites, popularity -- are pairs without history
    and get zeros for these counts in shopflow.recommend). Only events at or before the
    cutoff are used. Durations are in days; "since last purchase" is the lookback in days
    when the user never bought the item in the window.
#}

{%- set lookback_days = (var('lookback_seconds') | int) / 86400.0 -%}

with

pairs as (

    select * from {{ ref('int_user_item_events_by_cutoff') }}

),

shares as (

    select
        *,
        sum(ui_events_lookback) over (partition by user_id, cutoff_time) as user_events_total,
        row_number() over (
            partition by user_id, cutoff_time
            order by seconds_since_last_event, item_id
        ) as ui_recency_rank

    from pairs

),

final as (

    select
        user_id,
        item_id,
        cutoff_time,
        category_id,
        cast(ui_views_lookback as double precision) as ui_views_lookback,
        cast(ui_carts_lookback as double precision) as ui_carts_lookback,
        cast(ui_purchases_lookback as double precision) as ui_purchases_lookback,
        cast(ui_returns_lookback as double precision) as ui_returns_lookback,
        cast(ui_events_lookback as double precision) as ui_events_lookback,
        cast(ui_quantity_lookback as double precision) as ui_quantity_lookback,
        cast(ui_active_days_lookback as double precision) as ui_active_days_lookback,
        cast(seconds_since_last_event / 86400.0 as double precision) as ui_days_since_last_event,
        cast(seconds_since_first_event / 86400.0 as double precision) as ui_days_since_first_event,
        cast(
            coalesce(seconds_since_last_purchase / 86400.0, {{ lookback_days }})
            as double precision
        ) as ui_days_since_last_purchase,
        cast(ui_events_lookback as double precision) / user_events_total as ui_event_share,
        cast(ui_recency_rank as double precision) as ui_recency_rank,
        last_event_time

    from shares

)

select * from final
