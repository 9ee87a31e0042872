{#
    Timestamp arithmetic that DuckDB and PostgreSQL spell differently. Timestamps are
    naive UTC everywhere (docs/ARCHITECTURE.md), so epoch seconds are plain arithmetic and
    never depend on a session time zone.
#}

{# Seconds since 1970-01-01 00:00:00 of a naive UTC timestamp, as a double. #}
{% macro epoch_seconds(ts) -%}
    {{ return(adapter.dispatch('epoch_seconds', 'shopflow')(ts)) }}
{%- endmacro %}

{% macro default__epoch_seconds(ts) -%}
    cast(extract(epoch from {{ ts }}) as double precision)
{%- endmacro %}

{% macro duckdb__epoch_seconds(ts) -%}
    epoch({{ ts }})
{%- endmacro %}


{# `ts` moved by a number of seconds (an SQL expression, may be fractional or negative). #}
{% macro add_seconds(ts, seconds) -%}
    {{ return(adapter.dispatch('add_seconds', 'shopflow')(ts, seconds)) }}
{%- endmacro %}

{% macro default__add_seconds(ts, seconds) -%}
    ({{ ts }} + ({{ seconds }}) * interval '1 second')
{%- endmacro %}

{% macro duckdb__add_seconds(ts, seconds) -%}
    ({{ ts }} + to_seconds(cast({{ seconds }} as double)))
{%- endmacro %}


{# The naive UTC timestamp `seconds` after the epoch. #}
{% macro timestamp_from_epoch(seconds) -%}
    {{ shopflow.add_seconds("cast('1970-01-01 00:00:00' as timestamp)", seconds) }}
{%- endmacro %}


{# Seconds from `earlier` to `later` (positive when `later` is later). #}
{% macro seconds_between(earlier, later) -%}
    ({{ shopflow.epoch_seconds(later) }} - {{ shopflow.epoch_seconds(earlier) }})
{%- endmacro %}
