{#
    Each staged event with what the user did just before it, computed once over the
    user's whole history with window functions (linear in events, no self-join). Every
    column looks only backwards in time (lag / running sums), so joining it to the
    feature window of int_user_events_by_cutoff can never bring in an event after the
    cutoff. The feature families decide themselves whether an earlier event that lies
    before the lookback window may count (they drop such gaps).

    "Instants": the distinct (user_id, event_time) moments of a user. Lines of one order
    share an instant, so gaps are measured between instants, never 0 inside an order.

    Sessions split where the gap to the previous instant exceeds `session_gap_seconds`:
    30 minutes (the usual web-analytics default, needs no settings), or the horizon when
    the horizon is shorter (minute-level tasks), so a session never spans a label window.

    previous_*_time: the event_time of the user's previous event of the same kind (item,
    day, item and day, category, order line, purchase of the item), in (event_time,
    event_id) order; NULL for the first. An event opens its kind in a cutoff's window
    exactly when that previous time is NULL or at or before the window's start, so
    int_user_events_by_cutoff turns them into first-in-window flags and the families sum
    those flags instead of `count(distinct ...)` per (user, cutoff) (one sort over the
    events instead of one hash of every (event x cutoff) row per distinct count).
#}

{#- A table, not a view like the other intermediates: user_features and this model's tests
    (its invariants and leakage test) then read it instead of recomputing it each. -#}
{{ config(materialized='table') }}

{%- set horizon = var('horizon_seconds') | int -%}
{%- set session_gap = [1800, horizon] | min -%}

with

events as (

    select event_id, user_id, item_id, order_id, category_id, event_type, event_time

    from {{ ref('stg_shop__events') }}

),

previous_lines as (

    select
        event_id,
        event_time,
        lag(event_time) over (
            partition by user_id order by event_time, event_id
        ) as previous_time,
        lag(event_time) over (
            partition by user_id, item_id order by event_time, event_id
        ) as previous_item_time,
        case when category_id is not null then
            lag(event_time) over (
                partition by user_id, category_id order by event_time, event_id
            )
        end as previous_category_time,
        -- a purchase without an order id is an order of its own (as in user_features)
        case when event_type = 'purchase' then
            lag(event_time) over (
                partition by user_id, event_type, coalesce(order_id, event_id)
                order by event_time, event_id
            )
        end as previous_order_line_time,
        case when event_type = 'purchase' then
            lag(event_time) over (
                partition by user_id, item_id, event_type order by event_time, event_id
            )
        end as previous_item_purchase_time

    from events

),

previous_of_kind as (

    -- the previous event of the same day is the previous event when that falls on the
    -- same date (and none otherwise); likewise for the same item and day
    select
        event_id,
        previous_item_time,
        case when cast(previous_time as date) = cast(event_time as date)
            then previous_time
        end as previous_same_day_time,
        case when cast(previous_item_time as date) = cast(event_time as date)
            then previous_item_time
        end as previous_item_same_day_time,
        previous_category_time,
        previous_order_line_time,
        previous_item_purchase_time

    from previous_lines

),

instants as (

    select distinct user_id, event_time from events

),

instants_lagged as (

    select
        user_id,
        event_time,
        lag(event_time) over (partition by user_id order by event_time) as previous_event_time

    from instants

),

instants_gapped as (

    select
        user_id,
        event_time,
        {{ shopflow.seconds_between('previous_event_time', 'event_time') }} as gap_seconds

    from instants_lagged

),

instants_sessionised as (

    select
        user_id,
        event_time,
        gap_seconds,
        sum(case when gap_seconds is null or gap_seconds > {{ session_gap }} then 1 else 0 end) over (
            partition by user_id order by event_time rows between unbounded preceding and current row
        ) as session_number

    from instants_gapped

),

purchase_instants as (

    select distinct user_id, event_time from events where event_type = 'purchase'

),

purchase_instants_lagged as (

    select
        user_id,
        event_time,
        lag(event_time) over (partition by user_id order by event_time) as previous_purchase_time

    from purchase_instants

),

purchase_instants_gapped as (

    select
        user_id,
        event_time,
        {{ shopflow.seconds_between('previous_purchase_time', 'event_time') }} as purchase_gap_seconds

    from purchase_instants_lagged

),

ranked as (

    select
        events.*,
        row_number() over (
            partition by events.user_id, events.event_time
            order by case when events.event_type = 'purchase' then 0 else 1 end, events.event_id
        ) as line_at_instant

    from events

),

final as (

    select
        ranked.event_id,
        ranked.user_id,
        ranked.event_time,
        instants_sessionised.session_number,
        -- each gap once per instant: on the instant's first line, null on the others
        case when ranked.line_at_instant = 1 then instants_sessionised.gap_seconds end
            as gap_seconds,
        case when ranked.line_at_instant = 1 and ranked.event_type = 'purchase'
            then purchase_instants_gapped.purchase_gap_seconds
        end as purchase_gap_seconds,
        previous_of_kind.previous_item_time,
        previous_of_kind.previous_same_day_time,
        previous_of_kind.previous_item_same_day_time,
        previous_of_kind.previous_category_time,
        previous_of_kind.previous_order_line_time,
        previous_of_kind.previous_item_purchase_time

    from ranked

    inner join previous_of_kind on ranked.event_id = previous_of_kind.event_id

    inner join instants_sessionised
        on
            ranked.user_id = instants_sessionised.user_id
            and ranked.event_time = instants_sessionised.event_time

    left join purchase_instants_gapped
        on
            ranked.user_id = purchase_instants_gapped.user_id
            and ranked.event_time = purchase_instants_gapped.event_time

)

select * from final
