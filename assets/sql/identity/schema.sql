-- Reconciliation tables (issue 4). `ident` = who is who; `gold` = what the hub believes about them.
CREATE SCHEMA IF NOT EXISTS ident;
CREATE SCHEMA IF NOT EXISTS gold;

-- One row per person named in a current warehouse record (rebuilt by every reconcile run).
CREATE TABLE IF NOT EXISTS ident.person_mentions (
    mention_id VARCHAR PRIMARY KEY,      -- '<resource>|<role>|<record_key>'
    resource VARCHAR NOT NULL, provider VARCHAR NOT NULL,
    role VARCHAR NOT NULL,               -- subject | husband | wife | deceased | legal_rep
    record_key VARCHAR NOT NULL,         -- the record's primary key values joined by '|'
    batch_id VARCHAR, gxsj TIMESTAMP,
    doc_type VARCHAR,                    -- DOCUMENT_TYPE code ('1' citizen ID)
    doc_no VARCHAR,                      -- normalised number (IDs in 18-digit form)
    doc_key VARCHAR,                     -- '<doc_type>:<doc_no>' when the document is a valid key
    key_state VARCHAR,                   -- valid | invalid | missing | contradicted
    name VARCHAR, name_simplified VARCHAR, name_pinyin VARCHAR, name_flags VARCHAR[],
    sex VARCHAR, birth_date DATE, division VARCHAR
);

-- Which entity each mention belongs to, and how that was decided (rebuilt by every run).
CREATE TABLE IF NOT EXISTS ident.person_links (
    mention_id VARCHAR PRIMARY KEY, entity_id VARCHAR NOT NULL,
    method VARCHAR NOT NULL,             -- key | probabilistic | own (no match: an entity of its own)
    match_probability DOUBLE,            -- 1.0 for key links
    model_version VARCHAR, run_id VARCHAR
);

-- Linking units (a valid document key, or 'mention:<id>' for a mention without one) -> entity.
-- Kept across runs: this is what makes entity ids stable. `root` is the unit it was linked to
-- (itself, or the citizen ID the model matched it with), `method`/`p` how.
CREATE TABLE IF NOT EXISTS ident.registry (
    kind VARCHAR NOT NULL,               -- person | enterprise
    unit VARCHAR NOT NULL, entity_id VARCHAR NOT NULL,
    root VARCHAR, method VARCHAR, p DOUBLE,
    first_run VARCHAR, last_run VARCHAR,
    PRIMARY KEY (kind, unit)
);

-- Names in linking form, computed once per distinct spelling (opencc and pypinyin are Python).
CREATE TABLE IF NOT EXISTS ident.name_forms (
    name_raw VARCHAR PRIMARY KEY, name VARCHAR, name_simplified VARCHAR, name_pinyin VARCHAR,
    name_flags VARCHAR[]
);

-- How far each resource's history has been reconciled (its largest _vid seen by a run).
CREATE TABLE IF NOT EXISTS ident.watermarks (resource VARCHAR PRIMARY KEY, vid BIGINT);

CREATE TABLE IF NOT EXISTS ident.entities (
    entity_id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL,
    state VARCHAR NOT NULL,              -- active | merged (into successor) | retired
    successor VARCHAR, created_run VARCHAR, updated_run VARCHAR
);

-- Every change to the registry's clustering, with its reason; ids are never silently renumbered.
CREATE TABLE IF NOT EXISTS ident.entity_events (
    event_id VARCHAR PRIMARY KEY, run_id VARCHAR NOT NULL, happened_at TIMESTAMP NOT NULL,
    kind VARCHAR NOT NULL,               -- created | merged | split
    entity_id VARCHAR NOT NULL,          -- created: the new id; merged: the surviving id; split: the id split
    other_entity_id VARCHAR,             -- merged: the id merged away; split: the new id split off
    units VARCHAR[], reason VARCHAR
);

CREATE TABLE IF NOT EXISTS ident.runs (
    run_id VARCHAR PRIMARY KEY, started TIMESTAMP, finished TIMESTAMP, mode VARCHAR,
    changed_records BIGINT, mentions BIGINT, entities BIGINT, key_links BIGINT, probabilistic_links BIGINT,
    events BIGINT, conflicts_open BIGINT, seconds DOUBLE
);

-- Every candidate value for every golden field, with its provenance; rank 1 is the golden value,
-- the others are the losing values (kept, not overwritten). valid_from/valid_to are the hub's
-- knowledge time: read "as of t" with valid_from <= t AND (valid_to IS NULL OR valid_to > t).
CREATE TABLE IF NOT EXISTS gold.field_values (
    kind VARCHAR NOT NULL, entity_id VARCHAR NOT NULL, field VARCHAR NOT NULL,
    value VARCHAR, provider VARCHAR, resource VARCHAR, batch_id VARCHAR, record_key VARCHAR,
    as_of TIMESTAMP,                     -- the source record's update time (GXSJ)
    confidence DOUBLE,                   -- the match probability that put the record in this entity
    rank INTEGER NOT NULL, rule VARCHAR, -- rule: authority | recency | quality (why rank 1 won)
    disputed BOOLEAN, in_conflict BOOLEAN,
    valid_from TIMESTAMP NOT NULL, valid_to TIMESTAMP, digest VARCHAR
);

-- Contradictions between sources about one entity. Both sides keep their provenance.
CREATE TABLE IF NOT EXISTS gold.conflicts (
    conflict_id VARCHAR PRIMARY KEY,     -- stable: digest of kind + entity + both sides' records
    kind VARCHAR NOT NULL,               -- death_vs_active | marital_mismatch | hukou_two_regions |
                                         -- customs_of_deregistered | subsistence_after_death
    entity_kind VARCHAR, entity_id VARCHAR NOT NULL, region VARCHAR,
    a_value VARCHAR, a_provider VARCHAR, a_resource VARCHAR, a_record_key VARCHAR,
    a_batch_id VARCHAR, a_as_of TIMESTAMP,
    b_value VARCHAR, b_provider VARCHAR, b_resource VARCHAR, b_record_key VARCHAR,
    b_batch_id VARCHAR, b_as_of TIMESTAMP,
    responsible_provider VARCHAR,        -- who must act (an objection is raised to them), or NULL
    objection_id VARCHAR,
    detail_zh VARCHAR, detail_en VARCHAR,
    first_detected DATE NOT NULL, last_detected DATE NOT NULL, resolved_on DATE,
    status VARCHAR NOT NULL              -- open | resolved
);

-- Enterprise codes ('uscc:<USCC>', 'hgbm:<customs code>') and the enterprise entity they name.
CREATE VIEW IF NOT EXISTS ident.enterprise_units AS
    SELECT unit, entity_id FROM ident.registry WHERE kind = 'enterprise';
