{#
    Feature windows (vars: feature_window_seconds, shortest first). window_suffix mirrors
    shopflow.features.windows.window_suffix: the largest of d, h, m that divides the
    window exactly, else seconds (604800 -> 7d, 5400 -> 90m, 3600 -> 1h).
    tests/unit/test_feature_windows.py renders this macro and compares.
#}

{% macro window_suffix(seconds) -%}
    {%- set s = seconds | int -%}
    {%- if s % 86400 == 0 -%}{{ s // 86400 }}d
    {%- elif s % 3600 == 0 -%}{{ s // 3600 }}h
    {%- elif s % 60 == 0 -%}{{ s // 60 }}m
    {%- else -%}{{ s }}s
    {%- endif -%}
{%- endmacro %}

{# The feature windows of this run, in seconds, shortest first. #}
{% macro feature_windows() -%}
    {{ return(var('feature_window_seconds') | map('int') | list) }}
{%- endmacro %}
