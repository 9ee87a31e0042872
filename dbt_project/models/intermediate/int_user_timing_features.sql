{#
    Timing family: how regularly a user comes back and buys (the inputs of buy-till-you-
    die models), one row per (user_id, cutoff_time) of int_user_events_by_cutoff.

    Gaps are between consecutive instants (int_user_event_sequence, carried on
    int_user_events_by_cutoff) and count only when both ends lie in the window
    (lookback_start, cutoff_time]: the earlier end is seconds_before_cutoff + gap before
    the cutoff. Nothing after the cutoff is read (the later end is a windowed event),
    nothing older than the lookback either.

    Missing values are NULL, never imputed: no gap (one instant) -> mean NULL; fewer than
    two gaps -> std and cv NULL (sample std); no purchase gap -> purchase_recency ratio
    NULL. Tree models read NULL natively; linear models must impute.
#}

{#- A table, not a view like the other intermediates: user_features and this model's tests
    (its invariants and leakage test) then read it instead of recomputing it each. -#}
{{ config(materialized='table') }}

{%- set lookback = var('lookback_seconds') | int -%}

with

events as (

    select * from {{ ref('int_user_events_by_cutoff') }}

),

joined as (

    select
        events.user_id,
        events.cutoff_time,
        events.event_type,
        events.seconds_before_cutoff,
        case
            when events.seconds_before_cutoff + events.gap_seconds < {{ lookback }}
                then events.gap_seconds
        end as gap_seconds,
        case
            when events.seconds_before_cutoff + events.purchase_gap_seconds < {{ lookback }}
                then events.purchase_gap_seconds
        end as purchase_gap_seconds

    from events

),

aggregated as (

    select
        user_id,
        cutoff_time,
        avg(gap_seconds) as gap_mean_seconds,
        stddev_samp(gap_seconds) as gap_std_seconds,
        avg(purchase_gap_seconds) as purchase_gap_mean_seconds,
        stddev_samp(purchase_gap_seconds) as purchase_gap_std_seconds,
        min(case when event_type = 'purchase' then seconds_before_cutoff end)
            as seconds_since_last_purchase

    from joined

    group by user_id, cutoff_time

),

final as (

    select
        user_id,
        cutoff_time,
        cast(gap_mean_seconds / 86400.0 as double precision) as event_gap_mean_days_lookback,
        cast(gap_std_seconds / 86400.0 as double precision) as event_gap_std_days_lookback,
        cast(
            case when gap_mean_seconds > 0 then gap_std_seconds / gap_mean_seconds end
            as double precision
        ) as event_gap_cv_lookback,
        cast(purchase_gap_mean_seconds / 86400.0 as double precision)
            as purchase_gap_mean_days_lookback,
        cast(purchase_gap_std_seconds / 86400.0 as double precision)
            as purchase_gap_std_days_lookback,
        cast(
            case
                when purchase_gap_mean_seconds > 0
                    then purchase_gap_std_seconds / purchase_gap_mean_seconds
            end
            as double precision
        ) as purchase_gap_cv_lookback,
        -- > 1: overdue against the user's own rhythm; capped at 100 (a days-long silence
        -- after minute-apart purchases says no more at 1000 than at 100)
        cast(
            case
                when purchase_gap_mean_seconds > 0
                    then least(seconds_since_last_purchase / purchase_gap_mean_seconds, 100.0)
            end
            as double precision
        ) as purchase_recency_over_mean_gap_lookback

    from aggregated

)

select * from final
