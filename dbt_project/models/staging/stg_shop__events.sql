{#
    Typed events, duplicates under `var('event_key')` (settings quality.duplicate_key;
    by default every event column, i.e. exact duplicates) removed, one `event_id` each.

    Incremental by batch: every raw batch with no row here yet is read (an anti-join on
    `batch_id`), so a new batch only costs its own rows. Not by `ingested_at`: ingestion
    stamps a batch when it *starts*, so with two overlapping ingestions a batch stamped
    earlier can commit after a later one was staged, and a `>= max(ingested_at)` filter
    would skip it forever. Ids already present are skipped, so a re-run never duplicates
    an event (a batch whose rows were all duplicates is re-read, and again adds nothing).
    Nothing in here depends on the task vars, so a changed horizon or lookback needs no
    full refresh.
#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
    )
}}

with

source as (

    select * from {{ source('shop', 'raw_events') }} as raw

    {% if is_incremental() %}
    where not exists (
        select 1 from {{ this }} as staged
        where staged.batch_id = raw.batch_id
    )
    {% endif %}

),

renamed as (

    select
        ----------  ids
        cast(user_id as varchar) as user_id,
        cast(item_id as varchar) as item_id,
        cast(order_id as varchar) as order_id,
        cast(category_id as varchar) as category_id,

        ----------  what happened
        -- docs/DESIGN.md §2: a negative quantity means a return, whatever the source called it
        case
            when lower(event_type) = 'purchase' and quantity < 0 then 'return'
            else lower(event_type)
        end as event_type,
        cast(price as double precision) as price,
        cast(coalesce(quantity, 1) as integer) as quantity,

        ----------  timestamps (naive UTC)
        cast(event_time as timestamp) as event_time,

        ----------  lineage
        cast(batch_id as varchar) as batch_id,
        cast(source_file as varchar) as source_file,
        cast(source_row as bigint) as source_row,
        cast(ingested_at as timestamp) as ingested_at

    from source

),

identified as (

    select
        -- var event_key = settings quality.duplicate_key (the raw gate counts the copies)
        {{ shopflow.event_hash(var('event_key')) }} as event_id,
        *

    from renamed

),

ranked as (

    -- the first copy ingested is the one kept: lineage points at where it came from
    select
        *,
        row_number() over (
            partition by event_id
            order by ingested_at, batch_id, source_row
        ) as copy_number

    from identified

),

final as (

    select
        event_id,
        user_id,
        item_id,
        order_id,
        category_id,
        event_type,
        price,
        quantity,
        event_time,
        batch_id,
        source_file,
        source_row,
        ingested_at

    from ranked

    where
        copy_number = 1
        {% if is_incremental() %}
        and not exists (
            select 1 from {{ this }} as existing
            where existing.event_id = ranked.event_id
        )
        {% endif %}

)

select * from final
