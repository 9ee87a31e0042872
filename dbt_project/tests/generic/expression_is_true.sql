{#
    Fails for each row where `expression` is not true (null counts as a failure: an
    invariant that cannot be evaluated does not hold).
#}
{% test expression_is_true(model, expression) %}

select *

from {{ model }}

where not coalesce(({{ expression }}), false)

{% endtest %}
