{#
    Fails for each combination of `combination_of_columns` that appears more than once.
    (dbt_utils has one; packages cannot be downloaded reliably where Shopflow runs.)
#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

with

grouped as (

    select
        {{ combination_of_columns | join(', ') }},
        count(*) as occurrences

    from {{ model }}

    group by {{ combination_of_columns | join(', ') }}

),

final as (

    select * from grouped where occurrences > 1

)

select * from final

{% endtest %}
