{#
    Composite foreign key: every non-null combination of `columns` in the model must exist
    in `to` under the same column names (e.g. labels -> user_features on
    user_id + cutoff_time; dbt's own `relationships` checks one column only).
#}
{% test relationships_by_columns(model, to, columns) %}

with

child as (

    select distinct {{ columns | join(', ') }}

    from {{ model }}

    where
        {% for column in columns %}
        {{ column }} is not null{% if not loop.last %} and{% endif %}
        {% endfor %}

),

parent as (

    select distinct {{ columns | join(', ') }} from {{ to }}

),

final as (

    select child.*

    from child

    left join parent
        on
        {% for column in columns %}
        child.{{ column }} = parent.{{ column }}{% if not loop.last %} and{% endif %}
        {% endfor %}

    where parent.{{ columns[0] }} is null

)

select * from final

{% endtest %}
