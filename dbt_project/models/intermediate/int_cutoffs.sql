{#
    The cutoff grid: the instants at which features are computed and labels start.

    Training cutoffs are epoch-aligned multiples of `cutoff_every_seconds` (so the grid is
    the same whatever day a batch starts on) with a full step of history before them,
    `min(event_time) + cutoff_every <= cutoff`, and a complete label window after them,
    `cutoff + horizon <= max(event_time)`. One more row, the serving snapshot at
    `max(event_time)`, carries the newest features for the online store; it has no label.
#}

{%- set every = var('cutoff_every_seconds') | int -%}
{%- set horizon = var('horizon_seconds') | int -%}
{%- set lookback = var('lookback_seconds') | int -%}

with

events as (

    select event_time from {{ ref('stg_shop__events') }}

),

bounds as (

    select
        min(event_time) as first_event_time,
        max(event_time) as last_event_time

    from events

),

steps as (

    select
        cast(ceil(({{ shopflow.epoch_seconds('first_event_time') }} + {{ every }}) / {{ every }}) as bigint)
            as first_step,
        cast(floor(({{ shopflow.epoch_seconds('last_event_time') }} - {{ horizon }}) / {{ every }}) as bigint)
            as last_step

    from bounds

    where first_event_time is not null

),

training_cutoffs as (

    select
        {{ shopflow.timestamp_from_epoch('grid.step * ' ~ every) }} as cutoff_time,
        true as is_training_cutoff

    from steps

    cross join lateral generate_series(steps.first_step, steps.last_step) as grid (step)

),

serving_cutoff as (

    select
        last_event_time as cutoff_time,
        false as is_training_cutoff

    from bounds

    where last_event_time is not null

),

cutoffs as (

    select * from training_cutoffs
    union all
    select * from serving_cutoff

),

final as (

    select
        cutoff_time,
        is_training_cutoff,
        -- features see (lookback_start, cutoff_time]; labels look at (cutoff_time, label_window_end]
        {{ shopflow.add_seconds('cutoff_time', -lookback) }} as lookback_start,
        {{ shopflow.add_seconds('cutoff_time', horizon) }} as label_window_end

    from cutoffs

)

select * from final
