{#
    A text column ordered by its bytes. Rank tie-breaks must not depend on the
    database's locale: PostgreSQL sorts text by its collation (e.g. en_US ignores case
    and punctuation), DuckDB by bytes.
#}
{% macro binary_order(column) -%}
    {{ return(adapter.dispatch('binary_order', 'shopflow')(column)) }}
{%- endmacro %}

{% macro default__binary_order(column) -%}
    {{ column }}
{%- endmacro %}

{% macro postgres__binary_order(column) -%}
    {{ column }} collate "C"
{%- endmacro %}
