{#
    Session family: how the user's visits look, one row per (user_id, cutoff_time) of
    int_user_events_by_cutoff.

    Sessions come from int_user_event_sequence: a new one starts where the gap to the
    user's previous event exceeds min(30 minutes, horizon) (documented there). Only the
    window's events are counted, so a session that began before the lookback start is
    cut at it and a session still running at the cutoff is cut at the cutoff (its later
    events are never read). Durations are in days like every duration feature
    (1 minute = 0.000694 days).

    Missing values: none; every row has at least one event, hence one session.
#}

{#- A table, not a view like the other intermediates: user_features and this model's tests
    (its invariants and leakage test) then read it instead of recomputing it each. -#}
{{ config(materialized='table') }}

with

events as (

    select * from {{ ref('int_user_events_by_cutoff') }}

),

event_sequence as (

    select event_id, session_number from {{ ref('int_user_event_sequence') }}

),

per_session as (

    select
        events.user_id,
        events.cutoff_time,
        event_sequence.session_number,
        count(*) as session_events,
        min(events.seconds_before_cutoff) as end_seconds,
        max(events.seconds_before_cutoff) as start_seconds

    from events

    inner join event_sequence on events.event_id = event_sequence.event_id

    group by events.user_id, events.cutoff_time, event_sequence.session_number

),

ranked as (

    select
        *,
        row_number() over (
            partition by user_id, cutoff_time order by session_number desc
        ) as sessions_ago

    from per_session

),

aggregated as (

    select
        user_id,
        cutoff_time,
        count(*) as sessions,
        sum(session_events) as events,
        avg(start_seconds - end_seconds) as mean_length_seconds,
        max(case when sessions_ago = 1 then session_events end) as last_session_events,
        max(case when sessions_ago = 1 then start_seconds - end_seconds end) as last_length_seconds,
        max(case when sessions_ago = 1 then start_seconds end) as last_start_seconds

    from ranked

    group by user_id, cutoff_time

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
