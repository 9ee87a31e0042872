{#
    Trend family: is the user's activity speeding up or slowing down? Rates (per second)
    in the short window over rates in the whole lookback, one row per (user_id,
    cutoff_time) of int_user_events_by_cutoff.

    short = min(horizon, lookback): the window as long as the label window (the most
    recent behaviour of the same span the model predicts); long = the lookback. A ratio of
    1 is steady activity, 0 silence in the short window, lookback / short the maximum (all
    activity in the short window): bounded, no outliers. When horizon >= lookback the two
    windows coincide and every ratio is 1.

    Missing values: the event ratio is never NULL (every row has an event in the
    lookback); the purchase and money ratios are NULL without a purchase (or purchase
    amount) in the lookback.
#}

{#- A table, not a view like the other intermediates: user_features and this model's tests
    (its invariants and leakage test) then read it instead of recomputing it each. -#}
{{ config(materialized='table') }}

{%- set horizon = var('horizon_seconds') | int -%}
{%- set lookback = var('lookback_seconds') | int -%}
{%- set short = [horizon, lookback] | min -%}

with

events as (

    select * from {{ ref('int_user_events_by_cutoff') }}

),

aggregated as (

    select
        user_id,
        cutoff_time,
        cast(count(*) as double precision) as events_lookback,
        cast(sum(case when seconds_before_cutoff < {{ short }} then 1 else 0 end) as double precision)
            as events_short,
        cast(sum(case when event_type = 'purchase' then 1 else 0 end) as double precision)
            as purchases_lookback,
        cast(
            sum(case when event_type = 'purchase' and seconds_before_cutoff < {{ short }} then 1 else 0 end)
            as double precision
        ) as purchases_short,
        sum(purchase_amount) as monetary_lookback,
        sum(case when seconds_before_cutoff < {{ short }} then purchase_amount else 0 end)
            as monetary_short

    from events

    group by user_id, cutoff_time

),

final as (

    select
        user_id,
        cutoff_time,
        cast(
            (events_short / {{ short }}) / (events_lookback / {{ lookback }})
            as double precision
        ) as event_rate_short_over_lookback,
        cast(
            case
                when purchases_lookback > 0
                    then (purchases_short / {{ short }}) / (purchases_lookback / {{ lookback }})
            end
            as double precision
        ) as purchase_rate_short_over_lookback,
        cast(
            case
                when monetary_lookback > 0
                    then (monetary_short / {{ short }}) / (monetary_lookback / {{ lookback }})
            end
            as double precision
        ) as monetary_rate_short_over_lookback

    from aggregated

)

select * from final
