{#- DuckDB's spill folder (warehouse.temp_directory, via DBT_SHOPFLOW_DUCKDB_TEMP_DIRECTORY),
    set once per run from on-run-start. Not in the profile's `settings:`: dbt-duckdb SETs
    those on every cursor, and DuckDB refuses to SET temp_directory again once it has
    spilled, even to the same folder, so it is SET only when it differs. -#}
{% macro set_duckdb_temp_directory() %}
  {% if target.type == 'duckdb' %}
    {% set wanted = env_var('DBT_SHOPFLOW_DUCKDB_TEMP_DIRECTORY', '') %}
    {% if wanted and execute %}
      {% set current = run_query("select current_setting('temp_directory')").columns[0].values()[0] %}
      {% if current != wanted %}
        {% do run_query("set temp_directory = '" ~ wanted | replace("'", "''") ~ "'") %}
      {% endif %}
    {% endif %}
  {% endif %}
{% endmacro %}
