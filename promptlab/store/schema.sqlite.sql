CREATE TABLE artifacts (
	sha256 VARCHAR(64) NOT NULL, 
	content TEXT NOT NULL, 
	PRIMARY KEY (sha256)
);

CREATE TABLE runs (
	id VARCHAR(32) NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	status VARCHAR(20) NOT NULL, 
	created_at DATETIME NOT NULL, 
	finished_at DATETIME, 
	planned INTEGER NOT NULL, 
	config_json TEXT NOT NULL, 
	overrides_json TEXT NOT NULL, 
	config_sha256 VARCHAR(64) NOT NULL, 
	manifest_json TEXT NOT NULL, 
	parent_run_id VARCHAR(32), 
	sweep_id VARCHAR(32), owner_host VARCHAR(255), owner_pid INTEGER, owner_token VARCHAR(32), heartbeat_at DATETIME, 
	PRIMARY KEY (id), 
	FOREIGN KEY(parent_run_id) REFERENCES runs (id)
);

CREATE INDEX ix_runs_config_sha256 ON runs (config_sha256);

CREATE INDEX ix_runs_created_at ON runs (created_at);

CREATE INDEX ix_runs_name ON runs (name);

CREATE INDEX ix_runs_status ON runs (status);

CREATE INDEX ix_runs_sweep_id ON runs (sweep_id);

CREATE TABLE run_artifacts (
	run_id VARCHAR(32) NOT NULL, 
	name VARCHAR(500) NOT NULL, 
	sha256 VARCHAR(64) NOT NULL, 
	PRIMARY KEY (run_id, name), 
	FOREIGN KEY(run_id) REFERENCES runs (id), 
	FOREIGN KEY(sha256) REFERENCES artifacts (sha256)
);

CREATE TABLE trials (
	run_id VARCHAR(32) NOT NULL, 
	idx INTEGER NOT NULL, 
	"key" VARCHAR(64) NOT NULL, 
	model_alias VARCHAR(200) NOT NULL, 
	provider VARCHAR(50) NOT NULL, 
	model VARCHAR(500) NOT NULL, 
	prompt VARCHAR(200) NOT NULL, 
	params_json TEXT NOT NULL, 
	row_id VARCHAR(200) NOT NULL, 
	row_json TEXT NOT NULL, 
	repeat INTEGER NOT NULL, 
	messages_json TEXT NOT NULL, 
	endpoint VARCHAR(500) NOT NULL, 
	cache_key VARCHAR(64) NOT NULL, 
	PRIMARY KEY (run_id, idx), 
	FOREIGN KEY(run_id) REFERENCES runs (id)
);

CREATE TABLE attempts (
	run_id VARCHAR(32) NOT NULL, 
	idx INTEGER NOT NULL, 
	number INTEGER NOT NULL, 
	started_at DATETIME NOT NULL, 
	duration_ms FLOAT NOT NULL, 
	url TEXT NOT NULL, 
	request_headers_json TEXT NOT NULL, 
	request_body TEXT NOT NULL, 
	status_code INTEGER, 
	response_body TEXT, 
	error_kind VARCHAR(20), 
	error TEXT, 
	retry_after_ms FLOAT, 
	PRIMARY KEY (run_id, idx, number), 
	FOREIGN KEY(run_id, idx) REFERENCES trials (run_id, idx)
);

CREATE TABLE results (
	run_id VARCHAR(32) NOT NULL, 
	idx INTEGER NOT NULL, 
	status VARCHAR(20) NOT NULL, 
	output TEXT, 
	finish_reason VARCHAR(50), 
	input_tokens INTEGER, 
	output_tokens INTEGER, 
	latency_ms FLOAT, 
	ttft_ms FLOAT, 
	tokens_per_s FLOAT, 
	cost_usd FLOAT, 
	attempts INTEGER NOT NULL, 
	response_model VARCHAR(500), 
	fingerprint VARCHAR(200), 
	error_kind VARCHAR(20), 
	error TEXT, 
	cache_hit BOOLEAN NOT NULL, 
	cacheable BOOLEAN NOT NULL, 
	cache_source VARCHAR(100), 
	finished_at DATETIME NOT NULL, tool_calls_json TEXT, parsed_json TEXT, reasoning TEXT, reasoning_tokens INTEGER, cached_input_tokens INTEGER, cache_write_tokens INTEGER, 
	PRIMARY KEY (run_id, idx), 
	FOREIGN KEY(run_id, idx) REFERENCES trials (run_id, idx)
);

CREATE TABLE scores (
	run_id VARCHAR(32) NOT NULL, 
	idx INTEGER NOT NULL, 
	scorer VARCHAR(200) NOT NULL, 
	value FLOAT, 
	passed BOOLEAN, 
	detail_json TEXT, 
	PRIMARY KEY (run_id, idx, scorer), 
	FOREIGN KEY(run_id, idx) REFERENCES trials (run_id, idx)
);

CREATE INDEX ix_results_run_status ON results (run_id, status);

CREATE INDEX ix_trials_run_row ON trials (run_id, row_id, idx);

CREATE TABLE batches (
	run_id VARCHAR(32) NOT NULL, 
	number INTEGER NOT NULL, 
	model_alias VARCHAR(200) NOT NULL, 
	api VARCHAR(20) NOT NULL, 
	round INTEGER NOT NULL, 
	status VARCHAR(20) NOT NULL, 
	batch_id VARCHAR(200), 
	input_file_id VARCHAR(200), 
	output_file_id VARCHAR(200), 
	error_file_id VARCHAR(200), 
	results_url TEXT, 
	request_count INTEGER NOT NULL, 
	completed_count INTEGER NOT NULL, 
	failed_count INTEGER NOT NULL, 
	idx_json TEXT NOT NULL, 
	error TEXT, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	ingested_at DATETIME, 
	PRIMARY KEY (run_id, number), 
	FOREIGN KEY(run_id) REFERENCES runs (id)
);

CREATE TABLE searches (
	id VARCHAR(32) NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	status VARCHAR(20) NOT NULL, 
	created_at DATETIME NOT NULL, 
	finished_at DATETIME, 
	config_json TEXT NOT NULL, 
	overrides_json TEXT NOT NULL, 
	spec_json TEXT NOT NULL, 
	sampler VARCHAR(20) NOT NULL, 
	seed INTEGER NOT NULL, 
	study_name VARCHAR(64) NOT NULL, 
	storage TEXT NOT NULL, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_searches_created_at ON searches (created_at);

CREATE TABLE search_trials (
	search_id VARCHAR(32) NOT NULL, 
	number INTEGER NOT NULL, 
	run_id VARCHAR(32) NOT NULL, 
	params_json TEXT NOT NULL, 
	overrides_json TEXT NOT NULL, 
	state VARCHAR(20) NOT NULL, 
	values_json TEXT, 
	error TEXT, 
	created_at DATETIME NOT NULL, 
	finished_at DATETIME, 
	PRIMARY KEY (search_id, number), 
	FOREIGN KEY(search_id) REFERENCES searches (id)
);

CREATE INDEX ix_search_trials_run_id ON search_trials (run_id);

CREATE TABLE report_cells (
	run_id VARCHAR(32) NOT NULL, 
	cell INTEGER NOT NULL, 
	model_alias VARCHAR(200) NOT NULL, 
	prompt VARCHAR(200) NOT NULL, 
	params_json TEXT NOT NULL, 
	calls INTEGER NOT NULL, 
	ok INTEGER NOT NULL, 
	cached INTEGER NOT NULL, 
	tool_call_ok INTEGER NOT NULL, 
	input_tokens BIGINT NOT NULL, 
	output_tokens BIGINT NOT NULL, 
	reasoning_tokens BIGINT NOT NULL, 
	cached_input_tokens BIGINT NOT NULL, 
	cache_write_tokens BIGINT NOT NULL, 
	cost_usd FLOAT NOT NULL, 
	latencies BLOB NOT NULL, 
	ttfts BLOB NOT NULL, 
	PRIMARY KEY (run_id, cell)
);

CREATE TABLE report_cell_scores (
	run_id VARCHAR(32) NOT NULL, 
	cell INTEGER NOT NULL, 
	scorer VARCHAR(200) NOT NULL, 
	model_alias VARCHAR(200) NOT NULL, 
	prompt VARCHAR(200) NOT NULL, 
	params_json TEXT NOT NULL, 
	n INTEGER NOT NULL, 
	passed INTEGER NOT NULL, 
	idxs BLOB NOT NULL, 
	vals BLOB NOT NULL, 
	PRIMARY KEY (run_id, scorer, cell)
);

CREATE TRIGGER results_insert_drops_cells AFTER INSERT ON results FOR EACH ROW BEGIN DELETE FROM report_cells WHERE run_id = NEW.run_id; END;

CREATE TRIGGER results_update_drops_cells AFTER UPDATE ON results FOR EACH ROW BEGIN DELETE FROM report_cells WHERE run_id = NEW.run_id; END;

CREATE TRIGGER results_delete_drops_cells AFTER DELETE ON results FOR EACH ROW BEGIN DELETE FROM report_cells WHERE run_id = OLD.run_id; END;

CREATE TRIGGER scores_insert_drops_cells AFTER INSERT ON scores FOR EACH ROW BEGIN DELETE FROM report_cell_scores WHERE run_id = NEW.run_id; END;

CREATE TRIGGER scores_update_drops_cells AFTER UPDATE ON scores FOR EACH ROW BEGIN DELETE FROM report_cell_scores WHERE run_id = NEW.run_id; END;

CREATE TRIGGER scores_delete_drops_cells AFTER DELETE ON scores FOR EACH ROW BEGIN DELETE FROM report_cell_scores WHERE run_id = OLD.run_id; END;

CREATE TABLE cache_entries (
	cache_key VARCHAR(64) NOT NULL, 
	run_id VARCHAR(32) NOT NULL, 
	idx INTEGER NOT NULL, 
	finished_at DATETIME NOT NULL, 
	PRIMARY KEY (cache_key, run_id, idx)
)
 WITHOUT ROWID

;

CREATE TRIGGER results_delete_keeps_cache_entries AFTER DELETE ON results FOR EACH ROW WHEN OLD.status = 'ok' AND OLD.cacheable BEGIN DELETE FROM cache_entries WHERE cache_key = (SELECT cache_key FROM trials WHERE trials.run_id = OLD.run_id AND trials.idx = OLD.idx) AND run_id = OLD.run_id AND idx = OLD.idx; END;

CREATE TABLE cache_pending (
	run_id VARCHAR(32) NOT NULL, 
	PRIMARY KEY (run_id), 
	FOREIGN KEY(run_id) REFERENCES runs (id)
);

CREATE TRIGGER results_insert_keeps_cache_entries AFTER INSERT ON results FOR EACH ROW WHEN NEW.status = 'ok' AND NEW.cacheable AND NOT EXISTS (SELECT 1 FROM cache_pending WHERE cache_pending.run_id = NEW.run_id) BEGIN INSERT INTO cache_entries (cache_key, run_id, idx, finished_at) SELECT (SELECT cache_key FROM trials WHERE trials.run_id = NEW.run_id AND trials.idx = NEW.idx), NEW.run_id, NEW.idx, NEW.finished_at WHERE NEW.status = 'ok' AND NEW.cacheable AND NOT EXISTS (SELECT 1 FROM cache_pending WHERE cache_pending.run_id = NEW.run_id) ON CONFLICT (cache_key, run_id, idx) DO UPDATE SET finished_at = excluded.finished_at; END;

CREATE TRIGGER results_update_keeps_cache_entries AFTER UPDATE ON results FOR EACH ROW WHEN (OLD.status = 'ok' AND OLD.cacheable) OR (NEW.status = 'ok' AND NEW.cacheable) BEGIN DELETE FROM cache_entries WHERE cache_key = (SELECT cache_key FROM trials WHERE trials.run_id = OLD.run_id AND trials.idx = OLD.idx) AND run_id = OLD.run_id AND idx = OLD.idx; INSERT INTO cache_entries (cache_key, run_id, idx, finished_at) SELECT (SELECT cache_key FROM trials WHERE trials.run_id = NEW.run_id AND trials.idx = NEW.idx), NEW.run_id, NEW.idx, NEW.finished_at WHERE NEW.status = 'ok' AND NEW.cacheable AND NOT EXISTS (SELECT 1 FROM cache_pending WHERE cache_pending.run_id = NEW.run_id) ON CONFLICT (cache_key, run_id, idx) DO UPDATE SET finished_at = excluded.finished_at; END;

CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

INSERT INTO alembic_version (version_num) VALUES ('0011');

