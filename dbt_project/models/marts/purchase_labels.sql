{#
    The target: for each (user_id, cutoff_time) of user_features at a *training* cutoff,
    did the user buy in (cutoff_time, cutoff_time + horizon]? The serving snapshot has no
    label (its window has not happened yet). A purchase exactly at the cutoff belongs to
    the features, one exactly at the window end to the label.
#}

with

features as (

    select user_id, cutoff_time from {{ ref('user_features') }}

),

cutoffs as (

    select cutoff_time, label_window_end

    from {{ ref('int_cutoffs') }}

    where is_training_cutoff

),

purchases as (

    select user_id, event_time

    from {{ ref('stg_shop__events') }}

    where event_type = 'purchase'

),

labelled as (

    select
        features.user_id,
        features.cutoff_time,
        cutoffs.label_window_end,
        count(purchases.event_time) as purchases_in_window

    from features

    inner join cutoffs
        on features.cutoff_time = cutoffs.cutoff_time

    left join purchases
        on
            purchases.user_id = features.user_id
            and purchases.event_time > features.cutoff_time
            and purchases.event_time <= cutoffs.label_window_end

    group by features.user_id, features.cutoff_time, cutoffs.label_window_end

),

final as (

    select
        user_id,
        cutoff_time,
        cast(case when purchases_in_window > 0 then 1 else 0 end as integer) as label,
        label_window_end

    from labelled

)

select * from final
