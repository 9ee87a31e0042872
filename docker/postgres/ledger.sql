-- The ledger's tables (shopflow.ledger.schema.postgres_ddl(), kept equal to it by
-- tests/unit/test_docker_sql.py): created by roles.sql as the pipeline's role, so the model
-- server's role can be granted read and append rights before either process starts.
-- Regenerate: python -c "from shopflow.ledger.schema import postgres_ddl; print(postgres_ddl(), end='')"
CREATE TABLE shopflow_aliases (
	alias VARCHAR(64) NOT NULL, 
	version VARCHAR(128), 
	since TIMESTAMP WITHOUT TIME ZONE, 
	reason TEXT, 
	previous_version VARCHAR(128), 
	event_id INTEGER, 
	PRIMARY KEY (alias)
);
CREATE TABLE shopflow_candidates (
	id SERIAL NOT NULL, 
	version VARCHAR(128) NOT NULL, 
	family VARCHAR(32) NOT NULL, 
	metrics JSON NOT NULL, 
	params JSON NOT NULL, 
	feature_service VARCHAR(128), 
	data_window_start VARCHAR(64), 
	data_window_end VARCHAR(64), 
	data_fingerprint VARCHAR(128), 
	config_hash VARCHAR(64), 
	code_version VARCHAR(64), 
	run_id VARCHAR(256), 
	created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	model VARCHAR(64) DEFAULT 'propensity' NOT NULL, 
	artefacts JSON, 
	bento VARCHAR(256), 
	PRIMARY KEY (id), 
	UNIQUE (version)
);
CREATE INDEX ix_shopflow_candidates_model ON shopflow_candidates (model);
CREATE TABLE shopflow_events (
	id SERIAL NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	version VARCHAR(128), 
	previous_version VARCHAR(128), 
	reason TEXT NOT NULL, 
	actor VARCHAR(128) NOT NULL, 
	details JSON NOT NULL, 
	model VARCHAR(64) DEFAULT 'propensity' NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT shopflow_events_kind CHECK (kind in ('promotion', 'rejection', 'deployment', 'rollback'))
);
CREATE INDEX ix_shopflow_events_model ON shopflow_events (model);
