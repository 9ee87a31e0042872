{#
    Context family: how popular and how convertible are the things the user looks at,
    one row per (user_id, cutoff_time) of int_user_events_by_cutoff.

    Item and category statistics are point-in-time: computed per cutoff from every
    user's events in the same window (lookback_start, cutoff_time], never from events
    after the cutoff (the user's own events included). Conversion = purchases / (views +
    carts + purchases), pooled over the touched items (or categories), so a popular item
    weighs more than a rarely seen one.

    Item counts are summed from int_user_item_events_by_cutoff (the window's events per
    user and item) rather than from every event again.

    Missing values: the item features are NULL only when the touched items had no view,
    cart or purchase in the window (returns only); the category features are NULL when
    none of the user's events has a category (e.g. data without category_id).
#}

{#- A table, not a view like the other intermediates: user_features and this model's tests
    (its invariants and leakage test) then read it instead of recomputing it each. -#}
{{ config(materialized='table') }}

with

events as (

    select * from {{ ref('int_user_events_by_cutoff') }}

),

user_items as (

    -- one row per (user, item, cutoff) with an event in the window, its counts by type
    select * from {{ ref('int_user_item_events_by_cutoff') }}

),

item_stats as (

    select
        cutoff_time,
        item_id,
        sum(ui_events_lookback) as item_events,
        sum(ui_views_lookback + ui_carts_lookback + ui_purchases_lookback) as item_interactions,
        sum(ui_purchases_lookback) as item_purchases

    from user_items

    group by cutoff_time, item_id

),

category_stats as (

    select
        cutoff_time,
        category_id,
        sum(case when event_type in ('view', 'cart', 'purchase') then 1 else 0 end) as category_interactions,
        sum(case when event_type = 'purchase' then 1 else 0 end) as category_purchases

    from events

    where category_id is not null

    group by cutoff_time, category_id

),

user_categories as (

    select user_id, cutoff_time, category_id, count(*) as user_category_events

    from events

    where category_id is not null

    group by user_id, cutoff_time, category_id

),

item_context as (

    select
        user_items.user_id,
        user_items.cutoff_time,
        avg(cast(item_stats.item_events as double precision)) as item_popularity_mean,
        sum(item_stats.item_purchases) as touched_item_purchases,
        sum(item_stats.item_interactions) as touched_item_interactions

    from user_items

    inner join item_stats
        on
            user_items.cutoff_time = item_stats.cutoff_time
            and user_items.item_id = item_stats.item_id

    group by user_items.user_id, user_items.cutoff_time

),

category_context as (

    select
        user_categories.user_id,
        user_categories.cutoff_time,
        sum(category_stats.category_purchases) as touched_category_purchases,
        sum(category_stats.category_interactions) as touched_category_interactions,
        max(user_categories.user_category_events) as top_category_events,
        sum(user_categories.user_category_events) as categorised_events

    from user_categories

    inner join category_stats
        on
            user_categories.cutoff_time = category_stats.cutoff_time
            and user_categories.category_id = category_stats.category_id

    group by user_categories.user_id, user_categories.cutoff_time

),

keys as (

    select distinct user_id, cutoff_time from user_items

),

final as (

    select
        keys.user_id,
        keys.cutoff_time,
        cast(item_context.item_popularity_mean as double precision) as touched_item_popularity_lookback,
        cast(
            case
                when item_context.touched_item_interactions > 0
                    then cast(item_context.touched_item_purchases as double precision)
                        / item_context.touched_item_interactions
            end
            as double precision
        ) as touched_item_conversion_rate_lookback,
        cast(
            case
                when category_context.touched_category_interactions > 0
                    then cast(category_context.touched_category_purchases as double precision)
                        / category_context.touched_category_interactions
            end
            as double precision
        ) as touched_category_conversion_rate_lookback,
        cast(
            cast(category_context.top_category_events as double precision)
            / category_context.categorised_events
            as double precision
        ) as top_category_share_lookback

    from keys

    left join item_context
        on
            keys.user_id = item_context.user_id
            and keys.cutoff_time = item_context.cutoff_time

    left join category_context
        on
            keys.user_id = category_context.user_id
            and keys.cutoff_time = category_context.cutoff_time

)

select * from final
