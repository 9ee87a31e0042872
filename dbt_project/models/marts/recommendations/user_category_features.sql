{#
    How much each user cares about each category before each cutoff: one row per
    (user_id, category_id, cutoff_time) for every category the user touched in
    (cutoff_time - lookback, cutoff_time]. Gives every candidate item -- also one the
    user never saw -- the user's affinity for its category. Rank 1 is the user's
    favourite category (most events, then most purchases, then category_id).
#}

with

events as (

    select * from {{ ref('int_user_events_by_cutoff') }}

    where category_id is not null

),

aggregated as (

    select
        user_id,
        category_id,
        cutoff_time,
        count(*) as uc_events_lookback,
        sum(case when event_type = 'purchase' then 1 else 0 end) as uc_purchases_lookback,
        min(seconds_before_cutoff) as seconds_since_last_event

    from events

    group by user_id, category_id, cutoff_time

),

totals as (

    select
        *,
        sum(uc_events_lookback) over (partition by user_id, cutoff_time) as user_events_total,
        sum(uc_purchases_lookback) over (partition by user_id, cutoff_time)
            as user_purchases_total,
        row_number() over (
            partition by user_id, cutoff_time
            order by uc_events_lookback desc, uc_purchases_lookback desc, category_id
        ) as uc_rank

    from aggregated

),

final as (

    select
        user_id,
        category_id,
        cutoff_time,
        cast(uc_events_lookback as double precision) as uc_events_lookback,
        cast(uc_purchases_lookback as double precision) as uc_purchases_lookback,
        cast(uc_events_lookback as double precision) / user_events_total as uc_event_share,
        case
            when user_purchases_total > 0
                then cast(uc_purchases_lookback as double precision) / user_purchases_total
            else 0.0
        end as uc_purchase_share,
        cast(seconds_since_last_event / 86400.0 as double precision) as uc_days_since_last_event,
        cast(uc_rank as double precision) as uc_rank

    from totals

)

select * from final
