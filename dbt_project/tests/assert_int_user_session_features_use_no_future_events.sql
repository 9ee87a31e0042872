{#
    No leakage, session family: recounts from staging the events and distinct instants in
    (cutoff_time - lookback, cutoff_time] and the newest of them. A row fails when the
    sessions hold a different number of events (sessions_lookback x
    events_per_session_lookback), when there are more sessions than instants, or when
    the latest session does not end at the newest event at or before the cutoff
    (cutoff_time - (days_since_last_session_start - last_session_length_days)), or when
    sessions_lookback differs from a recount of the sessions: window instants more than
    min(30 minutes, horizon) after the user's previous instant, plus the first window
    instant (recomputed here with its own lag over staging). A session that ran on past
    the cutoff would end later than any event the recount sees; sessions split by looking
    at the next event instead of the previous one count differently.
#}

{{ config(tags=['feature_family']) }}

{%- set horizon = var('horizon_seconds') | int -%}
{%- set lookback = var('lookback_seconds') | int -%}
{%- set session_gap = [1800, horizon] | min -%}
{%- set sample = shopflow.leakage_sample(ref('int_user_session_features')) | trim -%}

with

features as (

    select * from {{ ref('int_user_session_features') }} where {{ sample }}

),

events as (

    select user_id, event_time from {{ ref('stg_shop__events') }} where {{ sample }}

),

instants as (

    select
        user_id,
        event_time,
        lag(event_time) over (partition by user_id order by event_time) as previous_instant

    from (select distinct user_id, event_time from events) as distinct_instants

),

session_recount as (

    select
        features.user_id,
        features.cutoff_time,
        sum(case
            when instants.previous_instant is null
                or instants.previous_instant <= {{ shopflow.add_seconds('features.cutoff_time', -lookback) }}
                or {{ shopflow.seconds_between('instants.previous_instant', 'instants.event_time') }} > {{ session_gap }}
                then 1
            else 0
        end) as sessions_in_window

    from features

    inner join instants
        on
            instants.user_id = features.user_id
            and instants.event_time <= features.cutoff_time
            and instants.event_time > {{ shopflow.add_seconds('features.cutoff_time', -lookback) }}

    group by features.user_id, features.cutoff_time

),

recounted as (

    select
        features.user_id,
        features.cutoff_time,
        count(events.event_time) as events_in_window,
        count(distinct events.event_time) as instants_in_window,
        max(events.event_time) as newest_event

    from features

    left join events
        on
            events.user_id = features.user_id
            and events.event_time <= features.cutoff_time
            and events.event_time > {{ shopflow.add_seconds('features.cutoff_time', -lookback) }}

    group by features.user_id, features.cutoff_time

),

compared as (

    select
        features.*,
        recounted.events_in_window,
        recounted.instants_in_window,
        session_recount.sessions_in_window,
        {{ shopflow.seconds_between('recounted.newest_event', 'features.cutoff_time') }} / 86400.0
            as expected_days_since_last_event

    from features

    inner join recounted
        on
            features.user_id = recounted.user_id
            and features.cutoff_time = recounted.cutoff_time

    left join session_recount
        on
            features.user_id = session_recount.user_id
            and features.cutoff_time = session_recount.cutoff_time

),

final as (

    select *

    from compared

    where
        not coalesce(abs(sessions_lookback * events_per_session_lookback - events_in_window) < 1e-6, false)
        or sessions_lookback > instants_in_window
        or not coalesce(sessions_lookback = sessions_in_window, false)
        or not coalesce(
            abs(days_since_last_session_start - last_session_length_days - expected_days_since_last_event) < 1e-6,
            false
        )

)

select * from final
