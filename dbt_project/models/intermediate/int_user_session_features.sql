{#
    Session family: how the user's visits look, one row per (user_id, cutoff_time) of
    int_user_events_by_cutoff.

    Sessions come from int_user_event_sequence (carried on int_user_events_by_cutoff): a
    new one starts where the gap to the user's previous event exceeds min(30 minutes,
    horizon) (documented there). Only the window's events are counted, so a session that
    began before the lookback start is cut at it and a session still running at the cutoff
    is cut at the cutoff (its later events are never read). Durations are in days like
    every duration feature (1 minute = 0.000694 days).

    Missing values: none; every row has at least one event, hence one session.
#}

{#- A table, not a view like the other intermediates: user_features and this model's tests
    (its invariants and leakage test) then read it instead of recomputing it each. -#}
{{ config(materialized='table') }}

with

events as (

    select * from {{ ref('int_user_events_by_cutoff') }}

),

per_session as (

    select
        events.user_id,
        events.cutoff_time,
        events.session_number,
        count(*) as session_events,
        min(events.seconds_before_cutoff) as end_seconds,
        max(events.seconds_before_cutoff) as start_seconds

    from events

    group by events.user_id, events.cutoff_time, events.session_number

),

last_sessions as (

    -- the newest session of the window: the highest session number (a group and a join,
    -- no sort of every (user, cutoff) partition)
    select user_id, cutoff_time, max(session_number) as last_session_number

    from per_session

    group by user_id, cutoff_time

),

aggregated as (

    select
        per_session.user_id,
        per_session.cutoff_time,
        count(*) as sessions,
        sum(per_session.session_events) as events,
        avg(per_session.start_seconds - per_session.end_seconds) as mean_length_seconds,
        max(case when per_session.session_number = last_sessions.last_session_number
            then per_session.session_events end) as last_session_events,
        max(case when per_session.session_number = last_sessions.last_session_number
            then per_session.start_seconds - per_session.end_seconds end) as last_length_seconds,
        max(case when per_session.session_number = last_sessions.last_session_number
            then per_session.start_seconds end) as last_start_seconds

    from per_session

    inner join last_sessions
        on
            per_session.user_id = last_sessions.user_id
            and per_session.cutoff_time = last_sessions.cutoff_time

    group by per_session.user_id, per_session.cutoff_time

),

final as (

    select
        user_id,
        cutoff_time,
        cast(sessions as double precision) as sessions_lookback,
        cast(events as double precision) / sessions as events_per_session_lookback,
        cast(mean_length_seconds / 86400.0 as double precision) as mean_session_length_days_lookback,
        cast(last_session_events as double precision) as last_session_events,
        cast(last_length_seconds / 86400.0 as double precision) as last_session_length_days,
        cast(last_start_seconds / 86400.0 as double precision) as days_since_last_session_start

    from aggregated

)

select * from final
