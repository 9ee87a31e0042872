{#
    No leakage, items: each item_features row's view, cart and purchase counts must equal
    a recount from staging of events in (cutoff_time - lookback, cutoff_time].
#}

{%- set lookback = var('lookback_seconds') | int -%}

with

features as (

    select
        item_id,
        cutoff_time,
        item_views_lookback + item_carts_lookback + item_purchases_lookback as counted_events

    from {{ ref('item_features') }}

),

events as (

    select item_id, event_time

    from {{ ref('stg_shop__events') }}

    where event_type in ('view', 'cart', 'purchase')

),

recounted as (

    select
        features.item_id,
        features.cutoff_time,
        features.counted_events,
        count(events.event_time) as events_at_or_before_cutoff

    from features

    left join events
        on
            events.item_id = features.item_id
            and events.event_time <= features.cutoff_time
            and events.event_time > {{ shopflow.add_seconds('features.cutoff_time', -lookback) }}

    group by features.item_id, features.cutoff_time, features.counted_events

),

final as (

    select * from recounted where counted_events <> events_at_or_before_cutoff

)

select * from final
