{#
    A stable id for an event: md5 over its canonical columns, nulls marked, so two rows
    get the same id exactly when they are the same event (what "exact duplicate" means in
    staging). Ids are per backend: text forms of doubles differ between DuckDB and
    PostgreSQL, and ids never cross backends.
#}
{% macro event_hash(columns) -%}
    md5(
        {%- for column in columns %}
        coalesce(cast({{ column }} as varchar), '<null>'){% if not loop.last %} || '|' ||{% endif %}
        {%- endfor %}
    )
{%- endmacro %}
