{#
    The task's windows nest (var feature_window_seconds, shortest first): a longer window
    holds every event, purchase and amount of a shorter one, the longest (the lookback)
    at least the lookback's purchases and views, and lifetime totals hold the lookback's.
    No windowed column is null or negative (a count).
#}

{%- set windows = shopflow.feature_windows() -%}

select *

from {{ ref('user_features') }}

where
    false
    {%- for i in range(1, windows | length) %}
    {%- set wide = shopflow.window_suffix(windows[i]) %}
    {%- set narrow = shopflow.window_suffix(windows[i - 1]) %}
    or events_{{ wide }} < events_{{ narrow }}
    or purchases_{{ wide }} < purchases_{{ narrow }}
    {%- endfor %}
    {%- set whole = shopflow.window_suffix(windows | max) %}
    or views_lookback + carts_lookback + purchases_{{ whole }} + returns_lookback > events_{{ whole }}
    or purchases_{{ whole }} > purchases_lifetime
    or monetary_{{ whole }} > monetary_lifetime + 1e-6 * (1 + abs(monetary_lifetime))
    or {%- for w in windows %} coalesce(events_{{ shopflow.window_suffix(w) }} < 0 or purchases_{{ shopflow.window_suffix(w) }} < 0 or monetary_{{ shopflow.window_suffix(w) }} is null, true) or{% endfor %} false
