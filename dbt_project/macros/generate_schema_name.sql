{#
    Schemas are exactly <schema_prefix><layer>: `staging`, `intermediate`, `marts` (and
    `raw`, the source). dbt's default would glue the target schema in front
    (`marts_staging`), which no other part of Shopflow could predict; the prefix lets
    several warehouses share one PostgreSQL database (tests use a unique one each).
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set layer = custom_schema_name if custom_schema_name is not none else target.schema -%}
    {{ var('schema_prefix', '') ~ (layer | trim) }}
{%- endmacro %}
