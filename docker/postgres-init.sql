-- One PostgreSQL server, one database per concern (run once, on an empty data volume).
CREATE DATABASE airflow;   -- Airflow metadata + Celery result backend
CREATE DATABASE shopflow;  -- warehouse (raw/staging/intermediate/marts) + model ledger
CREATE DATABASE feast;     -- Feast SQL registry
