{#
    The ranking target: which items did each user buy in (cutoff_time, cutoff_time +
    horizon], at training cutoffs only. One row per (user_id, item_id, cutoff_time) that
    was bought; items not here were not bought. Every buyer is kept, also those with no
    history before the cutoff (`is_known_user` false: they have no user_features row and
    are served cold-start recommendations), so recall is measured on all buyers. A
    purchase exactly at the cutoff belongs to the features, one exactly at the window
    end to the label (as in purchase_labels).
#}

with

cutoffs as (

    select cutoff_time, label_window_end

    from {{ ref('int_cutoffs') }}

    where is_training_cutoff

),

purchases as (

    select user_id, item_id, event_time, quantity

    from {{ ref('stg_shop__events') }}

    where event_type = 'purchase'

),

known_users as (

    select user_id, cutoff_time from {{ ref('user_features') }}

),

bought as (

    select
        purchases.user_id,
        purchases.item_id,
        cutoffs.cutoff_time,
        cutoffs.label_window_end,
        count(*) as purchases_in_window,
        sum(purchases.quantity) as quantity_in_window

    from cutoffs

    inner join purchases
        on
            purchases.event_time > cutoffs.cutoff_time
            and purchases.event_time <= cutoffs.label_window_end

    group by purchases.user_id, purchases.item_id, cutoffs.cutoff_time, cutoffs.label_window_end

),

final as (

    select
        bought.user_id,
        bought.item_id,
        bought.cutoff_time,
        bought.label_window_end,
        cast(bought.purchases_in_window as integer) as purchases_in_window,
        cast(bought.quantity_in_window as integer) as quantity_in_window,
        known_users.user_id is not null as is_known_user

    from bought

    left join known_users
        on
            known_users.user_id = bought.user_id
            and known_users.cutoff_time = bought.cutoff_time

)

select * from final
