{#
    No leakage, context family: recomputes from staging the point-in-time item statistics
    (every user's events in (cutoff_time - lookback, cutoff_time]) of the items each user
    touched in that window, and the user's events per category. A row fails when
    touched_item_popularity_lookback, touched_item_conversion_rate_lookback or
    top_category_share_lookback differ from the recount (or are null where it has a
    value, or the reverse). Item statistics that saw events after the cutoff, from any
    user, count differently.
#}

{{ config(tags=['feature_family']) }}

{%- set lookback = var('lookback_seconds') | int -%}
{%- set sample = shopflow.leakage_sample(ref('int_user_context_features')) | trim -%}

with

features as (

    select * from {{ ref('int_user_context_features') }} where {{ sample }}

),

cutoffs as (

    select distinct cutoff_time from features

),

events as (

    select user_id, item_id, category_id, event_type, event_time from {{ ref('stg_shop__events') }}

),

windowed as (

    select cutoffs.cutoff_time, events.*

    from cutoffs

    inner join events
        on
            events.event_time <= cutoffs.cutoff_time
            and events.event_time > {{ shopflow.add_seconds('cutoffs.cutoff_time', -lookback) }}

),

item_stats as (

    select
        cutoff_time,
        item_id,
        count(*) as item_events,
        sum(case when event_type in ('view', 'cart', 'purchase') then 1 else 0 end) as item_interactions,
        sum(case when event_type = 'purchase' then 1 else 0 end) as item_purchases

    from windowed

    group by cutoff_time, item_id

),

user_items as (

    select distinct user_id, cutoff_time, item_id from windowed where {{ sample }}

),

item_recount as (

    select
        user_items.user_id,
        user_items.cutoff_time,
        avg(cast(item_stats.item_events as double precision)) as popularity,
        case when sum(item_stats.item_interactions) > 0
            then cast(sum(item_stats.item_purchases) as double precision) / sum(item_stats.item_interactions)
        end as conversion

    from user_items

    inner join item_stats
        on
            user_items.cutoff_time = item_stats.cutoff_time
            and user_items.item_id = item_stats.item_id

    group by user_items.user_id, user_items.cutoff_time

),

user_categories as (

    select user_id, cutoff_time, category_id, count(*) as category_events

    from windowed

    where category_id is not null and {{ sample }}

    group by user_id, cutoff_time, category_id

),

category_recount as (

    select
        user_id,
        cutoff_time,
        cast(max(category_events) as double precision) / sum(category_events) as top_share

    from user_categories

    group by user_id, cutoff_time

),

compared as (

    select
        features.*,
        item_recount.popularity,
        item_recount.conversion,
        category_recount.top_share

    from features

    left join item_recount
        on
            features.user_id = item_recount.user_id
            and features.cutoff_time = item_recount.cutoff_time

    left join category_recount
        on
            features.user_id = category_recount.user_id
            and features.cutoff_time = category_recount.cutoff_time

),

final as (

    select *

    from compared

    where
        not coalesce(abs(popularity - touched_item_popularity_lookback) < 1e-9, false)
        or (conversion is null) <> (touched_item_conversion_rate_lookback is null)
        or abs(conversion - touched_item_conversion_rate_lookback) > 1e-9
        or (top_share is null) <> (top_category_share_lookback is null)
        or abs(top_share - top_category_share_lookback) > 1e-9

)

select * from final
