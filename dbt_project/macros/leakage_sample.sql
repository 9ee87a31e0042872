{#
    Which shoppers a leakage test recounts (vars leakage_sample_above_users,
    leakage_sample_fraction; settings quality.leakage_sample_*). A recount from staging
    costs about as much as building the features again, so on a large warehouse the test
    checks a fixed, deterministic sample of shoppers instead of all of them: those whose
    id hashes into the first `fraction` of 10000 buckets. Below the threshold (or with it
    null) every shopper is checked, exactly as before.

    The sample keeps the tests' meaning: a shopper is in or out as a whole (all of their
    feature rows, at every cutoff, and all of their events), so each sampled shopper is
    recounted exactly as in the full test; a leak that touches many shoppers is caught
    unless it misses every sampled one. Statistics over every shopper (an item's
    popularity, a category's mean price) are still computed from every event.

    leakage_sample(relation, column) is a predicate on `column` (an SQL expression naming
    the shopper id, default user_id): `true` when `relation` (the feature table under
    test) holds at most leakage_sample_above_users distinct shoppers, else the bucket
    test. Set it once per test and filter the features and the events it recounts with
    it. The shoppers are counted when the test compiles, so the compiled test
    (target/compiled) shows which predicate ran.
#}

{% macro leakage_sample(relation, column='user_id') -%}
    {%- set above = var('leakage_sample_above_users', none) -%}
    {%- if above is none or not execute -%}
        true
    {%- elif shopflow.leakage_sample_shoppers(relation) <= (above | int) -%}
        true
    {%- else -%}
        {%- set buckets = (var('leakage_sample_fraction', 0.1) | float * 10000) | round | int -%}
        {{ shopflow.hash_bucket(column, 10000) }} < {{ [buckets, 1] | max }}
    {%- endif -%}
{%- endmacro %}


{# Distinct shoppers (user_id) in a built relation; 0 while it does not exist yet. #}
{% macro leakage_sample_shoppers(relation) -%}
    {%- if load_relation(relation) is none -%}
        {{ return(0) }}
    {%- endif -%}
    {%- set counted = run_query('select count(distinct user_id) from ' ~ relation) -%}
    {{ return(counted.columns[0].values()[0] | int) }}
{%- endmacro %}


{#
    A bucket in [0, buckets) from a stable hash of `column` as text: the same id lands in
    the same bucket on every run of the same backend (buckets are per backend; a sample
    never crosses backends).
#}
{% macro hash_bucket(column, buckets) -%}
    {{ return(adapter.dispatch('hash_bucket', 'shopflow')(column, buckets)) }}
{%- endmacro %}

{% macro default__hash_bucket(column, buckets) -%}
    (abs(cast(hashtext(cast({{ column }} as text)) as bigint)) % {{ buckets }})
{%- endmacro %}

{% macro duckdb__hash_bucket(column, buckets) -%}
    (hash(cast({{ column }} as varchar)) % {{ buckets }})
{%- endmacro %}
