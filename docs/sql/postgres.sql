-- Hot statements of taskstore on postgres, as compiled for its driver.
-- Written by docs/sql/render.py from the code; do not edit by hand.

-- enqueue, enqueue_many: a batch of new tasks, any size, one statement
-- parameters: pg_notify_2, make_interval_1, make_interval_2, make_interval_3, make_interval_4, make_interval_5, make_interval_6, new_name, new_queue, new_payload, new_priority, new_max_attempts, new_run_at, new_delay, new_concurrency_key, new_trace_context
WITH inserted AS 
(INSERT INTO taskstore_tasks (name, queue, payload, priority, max_attempts, run_at, created_at, updated_at, concurrency_key, trace_context) SELECT "new".name AS name, "new".queue AS queue, CAST("new".payload AS JSONB) AS payload, "new".priority AS priority, "new".max_attempts AS max_attempts, coalesce("new".run_at, statement_timestamp() + make_interval($2::INTEGER, $3::INTEGER, $4::INTEGER, $5::INTEGER, $6::INTEGER, $7::INTEGER, "new".delay), statement_timestamp()) AS coalesce_1, statement_timestamp() AS statement_timestamp_1, statement_timestamp() AS statement_timestamp__1, "new".concurrency_key AS concurrency_key, "new".trace_context AS trace_context 
FROM unnest($8::VARCHAR[], $9::VARCHAR[], $10::TEXT[], $11::INTEGER[], $12::INTEGER[], $13::TIMESTAMP WITH TIME ZONE[], $14::FLOAT[], $15::VARCHAR[], $16::VARCHAR[]) AS "new"(name, queue, payload, priority, max_attempts, run_at, delay, concurrency_key, trace_context) RETURNING taskstore_tasks.id, taskstore_tasks.queue)
 SELECT inserted.id, pg_notify($1::VARCHAR, inserted.queue) AS pg_notify_1 
FROM inserted;

-- enqueue of one task: its values bound directly
-- parameters: pg_notify_2, p_name, p_queue, p_payload, p_priority, p_max_attempts, p_run_at, make_interval_1, make_interval_2, make_interval_3, make_interval_4, make_interval_5, make_interval_6, p_delay, p_concurrency_key, p_trace_context
WITH inserted AS 
(INSERT INTO taskstore_tasks (name, queue, payload, priority, max_attempts, run_at, created_at, updated_at, concurrency_key, trace_context) VALUES ($2::VARCHAR, $3::VARCHAR, CAST($4::VARCHAR AS JSONB), $5::INTEGER, $6::INTEGER, coalesce($7::TIMESTAMP WITH TIME ZONE, statement_timestamp() + make_interval($8::INTEGER, $9::INTEGER, $10::INTEGER, $11::INTEGER, $12::INTEGER, $13::INTEGER, $14::FLOAT), statement_timestamp()), statement_timestamp(), statement_timestamp(), $15::VARCHAR, $16::VARCHAR) RETURNING taskstore_tasks.id, taskstore_tasks.queue)
 SELECT inserted.id, pg_notify($1::VARCHAR, inserted.queue) AS pg_notify_1 
FROM inserted;

-- enqueue with dedup_key: one row per key; a live task's key is skipped
-- parameters: p_name, p_queue, p_payload, p_priority, p_max_attempts, p_run_at, make_interval_1, make_interval_2, make_interval_3, make_interval_4, make_interval_5, make_interval_6, p_delay, p_dedup_key, p_concurrency_key, p_trace_context
INSERT INTO taskstore_tasks (name, queue, payload, priority, max_attempts, run_at, created_at, updated_at, dedup_key, concurrency_key, trace_context) VALUES ($1::VARCHAR, $2::VARCHAR, CAST($3::VARCHAR AS JSONB), $4::INTEGER, $5::INTEGER, coalesce($6::TIMESTAMP WITH TIME ZONE, statement_timestamp() + make_interval($7::INTEGER, $8::INTEGER, $9::INTEGER, $10::INTEGER, $11::INTEGER, $12::INTEGER, $13::FLOAT), statement_timestamp()), statement_timestamp(), statement_timestamp(), $14::VARCHAR, $15::VARCHAR, $16::VARCHAR) ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL AND status IN ('assigned', 'created', 'not_finished', 'running') DO NOTHING RETURNING taskstore_tasks.id, taskstore_tasks.dedup_key;

-- claim: a batch, claimed and started at once
-- parameters: status, attempts_1, claims_1, p_worker_id, make_interval_1, make_interval_2, make_interval_3, make_interval_4, make_interval_5, make_interval_6, p_lease, param_1, p_queue, p_limit
WITH picked AS 
(SELECT taskstore_tasks.id AS id 
FROM taskstore_tasks 
WHERE status IN ('created', 'not_finished') AND (taskstore_tasks.status = $12::VARCHAR OR taskstore_tasks.worker_id IS NOT NULL) AND taskstore_tasks.queue = $13::VARCHAR AND taskstore_tasks.run_at <= statement_timestamp() AND NOT (EXISTS (SELECT * 
FROM taskstore_queues 
WHERE taskstore_queues.name = $13::VARCHAR AND (taskstore_queues.paused = true OR taskstore_queues.concurrency IS NOT NULL OR taskstore_queues.rate_limit IS NOT NULL OR taskstore_queues.key_concurrency IS NOT NULL))) ORDER BY taskstore_tasks.priority DESC, taskstore_tasks.run_at, taskstore_tasks.id 
 LIMIT $14::INTEGER FOR UPDATE SKIP LOCKED)
 UPDATE taskstore_tasks SET status=$1::VARCHAR, attempts=(taskstore_tasks.attempts + $2::INTEGER), claims=(taskstore_tasks.claims + $3::INTEGER), updated_at=statement_timestamp(), started_at=statement_timestamp(), worker_id=$4::VARCHAR, lease_expires_at=(statement_timestamp() + make_interval($5::INTEGER, $6::INTEGER, $7::INTEGER, $8::INTEGER, $9::INTEGER, $10::INTEGER, $11::FLOAT)) FROM picked WHERE taskstore_tasks.id = picked.id RETURNING taskstore_tasks.id, taskstore_tasks.name, taskstore_tasks.queue, taskstore_tasks.payload, taskstore_tasks.attempts, taskstore_tasks.max_attempts, taskstore_tasks.priority, taskstore_tasks.run_at, taskstore_tasks.trace_context, taskstore_tasks.claims;

-- orphan claim: one task rescued from a dead worker
-- parameters: status, attempts_1, claims_1, p_worker_id, make_interval_1, make_interval_2, make_interval_3, make_interval_4, make_interval_5, make_interval_6, p_lease, p_queue, p_limit
WITH picked AS 
(SELECT taskstore_tasks.id AS id 
FROM taskstore_tasks 
WHERE status IN ('not_finished') AND worker_id IS NULL AND taskstore_tasks.queue = $12::VARCHAR AND taskstore_tasks.run_at <= statement_timestamp() AND NOT (EXISTS (SELECT * 
FROM taskstore_queues 
WHERE taskstore_queues.name = $12::VARCHAR AND (taskstore_queues.paused = true OR taskstore_queues.concurrency IS NOT NULL OR taskstore_queues.rate_limit IS NOT NULL OR taskstore_queues.key_concurrency IS NOT NULL))) ORDER BY taskstore_tasks.priority DESC, taskstore_tasks.run_at, taskstore_tasks.id 
 LIMIT $13::INTEGER FOR UPDATE SKIP LOCKED)
 UPDATE taskstore_tasks SET status=$1::VARCHAR, attempts=(taskstore_tasks.attempts + $2::INTEGER), claims=(taskstore_tasks.claims + $3::INTEGER), updated_at=statement_timestamp(), started_at=statement_timestamp(), worker_id=$4::VARCHAR, lease_expires_at=(statement_timestamp() + make_interval($5::INTEGER, $6::INTEGER, $7::INTEGER, $8::INTEGER, $9::INTEGER, $10::INTEGER, $11::FLOAT)) FROM picked WHERE taskstore_tasks.id = picked.id RETURNING taskstore_tasks.id, taskstore_tasks.name, taskstore_tasks.queue, taskstore_tasks.payload, taskstore_tasks.attempts, taskstore_tasks.max_attempts, taskstore_tasks.priority, taskstore_tasks.run_at, taskstore_tasks.trace_context, taskstore_tasks.claims;

-- limited claim: a queue with flow control, its row locked; per-key limit applied
-- parameters: status, attempts_1, claims_1, p_worker_id, make_interval_1, make_interval_2, make_interval_3, make_interval_4, make_interval_5, make_interval_6, p_lease, param_1, p_queue, p_scan, p_key_limit, coalesce_1, param_2, param_3, param_4, n_1, p_keys, coalesce_2, p_limit
WITH RECURSIVE front AS 
(SELECT taskstore_tasks.id AS id, taskstore_tasks.name AS name, taskstore_tasks.concurrency_key AS ckey, taskstore_tasks.priority AS priority, taskstore_tasks.run_at AS run_at 
FROM taskstore_tasks 
WHERE status IN ('created', 'not_finished') AND (taskstore_tasks.status = $12::VARCHAR OR taskstore_tasks.worker_id IS NOT NULL) AND taskstore_tasks.queue = $13::VARCHAR AND taskstore_tasks.run_at <= statement_timestamp() ORDER BY taskstore_tasks.priority DESC, taskstore_tasks.run_at, taskstore_tasks.id 
 LIMIT $14::INTEGER), 
groups AS 
(SELECT front.ckey AS ckey, count(*) AS n 
FROM front GROUP BY front.ckey), 
keys AS 
(SELECT groups.ckey AS ckey 
FROM groups 
WHERE groups.ckey IS NOT NULL), 
busy AS MATERIALIZED 
(SELECT taskstore_tasks.concurrency_key AS ckey, count(*) AS n 
FROM taskstore_tasks 
WHERE taskstore_tasks.queue = $13::VARCHAR AND status IN ('assigned', 'running') AND taskstore_tasks.concurrency_key IS NOT NULL GROUP BY taskstore_tasks.concurrency_key), 
seen(ckey, n) AS 
(SELECT (SELECT min(next.concurrency_key) AS min_1 
FROM taskstore_tasks AS next 
WHERE status IN ('created', 'not_finished') AND concurrency_key IS NOT NULL AND next.queue = $13::VARCHAR) AS ckey, $19::INTEGER AS n 
WHERE (SELECT sum(groups.n) AS sum_1 
FROM groups) >= $14::INTEGER UNION ALL SELECT (SELECT min(next.concurrency_key) AS min_2 
FROM taskstore_tasks AS next 
WHERE status IN ('created', 'not_finished') AND concurrency_key IS NOT NULL AND next.queue = $13::VARCHAR AND next.concurrency_key > seen.ckey) AS anon_1, seen.n + $20::INTEGER AS anon_2 
FROM seen 
WHERE seen.ckey IS NOT NULL AND seen.n < $21::INTEGER), 
heads AS MATERIALIZED 
(SELECT seen.ckey AS ckey, (SELECT first.id 
FROM (SELECT k.id AS id, k.priority AS priority, k.status AS status, k.worker_id AS worker_id, k.run_at AS run_at, k.name AS name 
FROM taskstore_tasks AS k 
WHERE status IN ('created', 'not_finished') AND concurrency_key IS NOT NULL AND k.queue = $13::VARCHAR AND k.concurrency_key = seen.ckey AND (k.run_at <= statement_timestamp() OR k.started_at IS NOT NULL) ORDER BY k.priority DESC, k.id 
 LIMIT $17::INTEGER) AS first 
WHERE (first.status = $18::VARCHAR OR first.worker_id IS NOT NULL) AND first.run_at <= statement_timestamp()) AS head 
FROM seen 
WHERE seen.ckey IS NOT NULL AND (seen.ckey NOT IN (SELECT keys.ckey 
FROM keys))), 
picked AS 
(SELECT picks.id AS id 
FROM (SELECT front.id AS id, front.priority AS priority, front.run_at AS run_at 
FROM front 
WHERE front.ckey IS NULL OR front.id IN (SELECT placed.id 
FROM (SELECT keys.ckey AS ckey, firsts.id AS id, row_number() OVER (PARTITION BY keys.ckey ORDER BY firsts.priority DESC, firsts.id) AS place 
FROM keys JOIN LATERAL (SELECT k.id AS id, k.priority AS priority 
FROM taskstore_tasks AS k 
WHERE status IN ('created', 'not_finished') AND concurrency_key IS NOT NULL AND k.queue = $13::VARCHAR AND k.concurrency_key = keys.ckey AND (k.run_at <= statement_timestamp() OR k.started_at IS NOT NULL) ORDER BY k.priority DESC, k.id 
 LIMIT $15::INTEGER) AS firsts ON true) AS placed LEFT OUTER JOIN busy ON busy.ckey = placed.ckey 
WHERE placed.place + coalesce(busy.n, $16::INTEGER) <= $15::INTEGER) UNION ALL SELECT heads.head AS id, (SELECT taskstore_tasks.priority 
FROM taskstore_tasks 
WHERE taskstore_tasks.id = heads.head) AS priority, (SELECT taskstore_tasks.run_at 
FROM taskstore_tasks 
WHERE taskstore_tasks.id = heads.head) AS run_at 
FROM heads LEFT OUTER JOIN busy ON busy.ckey = heads.ckey 
WHERE heads.head IS NOT NULL AND coalesce(busy.n, $22::INTEGER) < $15::INTEGER) AS picks ORDER BY picks.priority DESC, picks.run_at, picks.id 
 LIMIT $23::INTEGER)
 UPDATE taskstore_tasks SET status=$1::VARCHAR, attempts=(taskstore_tasks.attempts + $2::INTEGER), claims=(taskstore_tasks.claims + $3::INTEGER), updated_at=statement_timestamp(), started_at=statement_timestamp(), worker_id=$4::VARCHAR, lease_expires_at=(statement_timestamp() + make_interval($5::INTEGER, $6::INTEGER, $7::INTEGER, $8::INTEGER, $9::INTEGER, $10::INTEGER, $11::FLOAT)) FROM picked WHERE taskstore_tasks.id = picked.id AND status IN ('created', 'not_finished') RETURNING taskstore_tasks.id, taskstore_tasks.name, taskstore_tasks.queue, taskstore_tasks.payload, taskstore_tasks.attempts, taskstore_tasks.max_attempts, taskstore_tasks.priority, taskstore_tasks.run_at, taskstore_tasks.trace_context, taskstore_tasks.claims;

-- counted claim: a queue whose only limit is its concurrency, counted in the claim itself
-- parameters: status, attempts_1, claims_1, p_worker_id, make_interval_1, make_interval_2, make_interval_3, make_interval_4, make_interval_5, make_interval_6, p_lease, param_1, p_queue, n_1, param_2, p_limit, param_3, claims_2, claims_3, param_4, coalesce_1, param_5
WITH bumped AS 
(UPDATE taskstore_queues SET claims=(taskstore_queues.claims + $18::BIGINT) WHERE taskstore_queues.name = $13::VARCHAR AND taskstore_queues.paused IS false AND taskstore_queues.concurrency IS NOT NULL AND taskstore_queues.rate_limit IS NULL AND taskstore_queues.key_concurrency IS NULL RETURNING taskstore_queues.claims - $19::BIGINT AS before, taskstore_queues.concurrency), 
picked AS 
(SELECT taskstore_tasks.id AS id 
FROM taskstore_tasks 
WHERE status IN ('created', 'not_finished') AND (taskstore_tasks.status = $12::VARCHAR OR taskstore_tasks.worker_id IS NOT NULL) AND taskstore_tasks.queue = $13::VARCHAR AND taskstore_tasks.run_at <= statement_timestamp() ORDER BY taskstore_tasks.priority DESC, taskstore_tasks.run_at, taskstore_tasks.id 
 LIMIT (SELECT CASE WHEN (room.n < $14::INTEGER) THEN $15::INTEGER WHEN (room.n < $16::INTEGER) THEN room.n ELSE $16::INTEGER END AS anon_1 
FROM (SELECT coalesce((SELECT CASE WHEN tally.alone THEN tally.counted WHEN (tally.counted < tally.freed) THEN tally.counted ELSE tally.freed END AS anon_2 
FROM (SELECT bumped.before = (SELECT taskstore_queues.claims 
FROM taskstore_queues 
WHERE taskstore_queues.name = $13::VARCHAR) AS alone, (bumped.concurrency - (SELECT count(*) AS count_1 
FROM taskstore_tasks 
WHERE taskstore_tasks.queue = $13::VARCHAR AND status IN ('assigned', 'running'))) + $17::INTEGER AS counted, $17::INTEGER AS freed 
FROM bumped
 LIMIT ALL OFFSET $20::INTEGER) AS tally), $21::INTEGER) AS n
 LIMIT ALL OFFSET $22::INTEGER) AS room) FOR UPDATE SKIP LOCKED)
 UPDATE taskstore_tasks SET status=$1::VARCHAR, attempts=(taskstore_tasks.attempts + $2::INTEGER), claims=(taskstore_tasks.claims + $3::INTEGER), updated_at=statement_timestamp(), started_at=statement_timestamp(), worker_id=$4::VARCHAR, lease_expires_at=(statement_timestamp() + make_interval($5::INTEGER, $6::INTEGER, $7::INTEGER, $8::INTEGER, $9::INTEGER, $10::INTEGER, $11::FLOAT)) FROM picked WHERE taskstore_tasks.id = picked.id RETURNING taskstore_tasks.id, taskstore_tasks.name, taskstore_tasks.queue, taskstore_tasks.payload, taskstore_tasks.attempts, taskstore_tasks.max_attempts, taskstore_tasks.priority, taskstore_tasks.run_at, taskstore_tasks.trace_context, taskstore_tasks.claims;

-- keyed claim: a queue whose only limit is its key concurrency, gated in the claim itself
-- parameters: status, attempts_1, claims_1, p_worker_id, make_interval_1, make_interval_2, make_interval_3, make_interval_4, make_interval_5, make_interval_6, p_lease, param_1, p_queue, p_scan, p_key_limit, coalesce_1, param_2, param_3, param_4, n_1, p_keys, coalesce_2, p_limit, param_5, claims_2, claims_3, coalesce_3
WITH RECURSIVE front AS 
(SELECT taskstore_tasks.id AS id, taskstore_tasks.name AS name, taskstore_tasks.concurrency_key AS ckey, taskstore_tasks.priority AS priority, taskstore_tasks.run_at AS run_at 
FROM taskstore_tasks 
WHERE status IN ('created', 'not_finished') AND (taskstore_tasks.status = $12::VARCHAR OR taskstore_tasks.worker_id IS NOT NULL) AND taskstore_tasks.queue = $13::VARCHAR AND taskstore_tasks.run_at <= statement_timestamp() ORDER BY taskstore_tasks.priority DESC, taskstore_tasks.run_at, taskstore_tasks.id 
 LIMIT $14::INTEGER), 
groups AS 
(SELECT front.ckey AS ckey, count(*) AS n 
FROM front GROUP BY front.ckey), 
keys AS 
(SELECT groups.ckey AS ckey 
FROM groups 
WHERE groups.ckey IS NOT NULL), 
busy AS MATERIALIZED 
(SELECT taskstore_tasks.concurrency_key AS ckey, count(*) AS n 
FROM taskstore_tasks 
WHERE taskstore_tasks.queue = $13::VARCHAR AND status IN ('assigned', 'running') AND taskstore_tasks.concurrency_key IS NOT NULL GROUP BY taskstore_tasks.concurrency_key), 
seen(ckey, n) AS 
(SELECT (SELECT min(next.concurrency_key) AS min_1 
FROM taskstore_tasks AS next 
WHERE status IN ('created', 'not_finished') AND concurrency_key IS NOT NULL AND next.queue = $13::VARCHAR) AS ckey, $19::INTEGER AS n 
WHERE (SELECT sum(groups.n) AS sum_1 
FROM groups) >= $14::INTEGER UNION ALL SELECT (SELECT min(next.concurrency_key) AS min_2 
FROM taskstore_tasks AS next 
WHERE status IN ('created', 'not_finished') AND concurrency_key IS NOT NULL AND next.queue = $13::VARCHAR AND next.concurrency_key > seen.ckey) AS anon_1, seen.n + $20::INTEGER AS anon_2 
FROM seen 
WHERE seen.ckey IS NOT NULL AND seen.n < $21::INTEGER), 
heads AS MATERIALIZED 
(SELECT seen.ckey AS ckey, (SELECT first.id 
FROM (SELECT k.id AS id, k.priority AS priority, k.status AS status, k.worker_id AS worker_id, k.run_at AS run_at, k.name AS name 
FROM taskstore_tasks AS k 
WHERE status IN ('created', 'not_finished') AND concurrency_key IS NOT NULL AND k.queue = $13::VARCHAR AND k.concurrency_key = seen.ckey AND (k.run_at <= statement_timestamp() OR k.started_at IS NOT NULL) ORDER BY k.priority DESC, k.id 
 LIMIT $17::INTEGER) AS first 
WHERE (first.status = $18::VARCHAR OR first.worker_id IS NOT NULL) AND first.run_at <= statement_timestamp()) AS head 
FROM seen 
WHERE seen.ckey IS NOT NULL AND (seen.ckey NOT IN (SELECT keys.ckey 
FROM keys))), 
bumped AS 
(UPDATE taskstore_queues SET claims=(taskstore_queues.claims + $25::BIGINT) WHERE taskstore_queues.name = $13::VARCHAR AND taskstore_queues.paused IS false AND taskstore_queues.concurrency IS NULL AND taskstore_queues.rate_limit IS NULL AND taskstore_queues.key_concurrency = $15::INTEGER RETURNING taskstore_queues.claims - $26::BIGINT AS before), 
picked AS 
(SELECT picks.id AS id 
FROM (SELECT front.id AS id, front.priority AS priority, front.run_at AS run_at 
FROM front 
WHERE front.ckey IS NULL OR front.id IN (SELECT placed.id 
FROM (SELECT keys.ckey AS ckey, firsts.id AS id, row_number() OVER (PARTITION BY keys.ckey ORDER BY firsts.priority DESC, firsts.id) AS place 
FROM keys JOIN LATERAL (SELECT k.id AS id, k.priority AS priority 
FROM taskstore_tasks AS k 
WHERE status IN ('created', 'not_finished') AND concurrency_key IS NOT NULL AND k.queue = $13::VARCHAR AND k.concurrency_key = keys.ckey AND (k.run_at <= statement_timestamp() OR k.started_at IS NOT NULL) ORDER BY k.priority DESC, k.id 
 LIMIT $15::INTEGER) AS firsts ON true) AS placed LEFT OUTER JOIN busy ON busy.ckey = placed.ckey 
WHERE placed.place + coalesce(busy.n, $16::INTEGER) <= $15::INTEGER) UNION ALL SELECT heads.head AS id, (SELECT taskstore_tasks.priority 
FROM taskstore_tasks 
WHERE taskstore_tasks.id = heads.head) AS priority, (SELECT taskstore_tasks.run_at 
FROM taskstore_tasks 
WHERE taskstore_tasks.id = heads.head) AS run_at 
FROM heads LEFT OUTER JOIN busy ON busy.ckey = heads.ckey 
WHERE heads.head IS NOT NULL AND coalesce(busy.n, $22::INTEGER) < $15::INTEGER) AS picks ORDER BY picks.priority DESC, picks.run_at, picks.id 
 LIMIT coalesce((SELECT CASE WHEN (bumped.before = (SELECT taskstore_queues.claims 
FROM taskstore_queues 
WHERE taskstore_queues.name = $13::VARCHAR)) THEN $23::INTEGER ELSE $24::INTEGER END AS anon_3 
FROM bumped), $27::INTEGER))
 UPDATE taskstore_tasks SET status=$1::VARCHAR, attempts=(taskstore_tasks.attempts + $2::INTEGER), claims=(taskstore_tasks.claims + $3::INTEGER), updated_at=statement_timestamp(), started_at=statement_timestamp(), worker_id=$4::VARCHAR, lease_expires_at=(statement_timestamp() + make_interval($5::INTEGER, $6::INTEGER, $7::INTEGER, $8::INTEGER, $9::INTEGER, $10::INTEGER, $11::FLOAT)) FROM picked WHERE taskstore_tasks.id = picked.id AND status IN ('created', 'not_finished') RETURNING taskstore_tasks.id, taskstore_tasks.name, taskstore_tasks.queue, taskstore_tasks.payload, taskstore_tasks.attempts, taskstore_tasks.max_attempts, taskstore_tasks.priority, taskstore_tasks.run_at, taskstore_tasks.trace_context, taskstore_tasks.claims;

-- ack: completions of a batch, fenced on (id, worker, attempt)
-- parameters: status, lease_expires_at, progress, batch_fence, batch_doc, batch_id, p_worker_id
UPDATE taskstore_tasks SET status=$1::VARCHAR, updated_at=statement_timestamp(), finished_at=statement_timestamp(), lease_expires_at=$2::TIMESTAMP WITH TIME ZONE, progress=$3::FLOAT, result=CAST(batch.doc AS JSONB) FROM (SELECT batch_rows.id AS id, ($4::INTEGER[])[batch_rows.i] AS fence, ($5::TEXT[])[batch_rows.i] AS doc 
FROM unnest($6::BIGINT[]) WITH ORDINALITY AS batch_rows(id, i)) AS batch WHERE taskstore_tasks.id = batch.id AND taskstore_tasks.id = ANY ($6::BIGINT[]) AND taskstore_tasks.claims = batch.fence AND taskstore_tasks.worker_id = $7::VARCHAR AND status IN ('running') RETURNING taskstore_tasks.id, taskstore_tasks.watched;

-- ack and refill: completions, and the claim of the slots they free (where one statement can)
-- parameters: param_1, param_2, param_3, param_4, batch_fence, batch_doc, batch_id, p_worker_id, param_5, param_6, param_7, attempts_1, claims_1, make_interval_1, make_interval_2, make_interval_3, make_interval_4, make_interval_5, make_interval_6, p_lease, param_8, p_queue, n_1, param_9, p_limit, claims_2, claims_3, param_10, coalesce_1, param_11
WITH done AS 
(UPDATE taskstore_tasks SET status=$2::VARCHAR, updated_at=statement_timestamp(), finished_at=statement_timestamp(), lease_expires_at=$3::TIMESTAMP WITH TIME ZONE, progress=$4::FLOAT, result=CAST(batch.doc AS JSONB) FROM (SELECT batch_rows.id AS id, ($5::INTEGER[])[batch_rows.i] AS fence, ($6::TEXT[])[batch_rows.i] AS doc 
FROM unnest($7::BIGINT[]) WITH ORDINALITY AS batch_rows(id, i)) AS batch WHERE taskstore_tasks.id = batch.id AND taskstore_tasks.id = ANY ($7::BIGINT[]) AND taskstore_tasks.claims = batch.fence AND taskstore_tasks.worker_id = $8::VARCHAR AND status IN ('running') RETURNING taskstore_tasks.id, taskstore_tasks.watched, taskstore_tasks.queue), 
bumped AS 
(UPDATE taskstore_queues SET claims=(taskstore_queues.claims + $26::BIGINT) WHERE taskstore_queues.name = $22::VARCHAR AND taskstore_queues.paused IS false AND taskstore_queues.concurrency IS NOT NULL AND taskstore_queues.rate_limit IS NULL AND taskstore_queues.key_concurrency IS NULL RETURNING taskstore_queues.claims - $27::BIGINT AS before, taskstore_queues.concurrency), 
picked AS 
(SELECT taskstore_tasks.id AS id 
FROM taskstore_tasks 
WHERE status IN ('created', 'not_finished') AND (taskstore_tasks.status = $21::VARCHAR OR taskstore_tasks.worker_id IS NOT NULL) AND taskstore_tasks.queue = $22::VARCHAR AND taskstore_tasks.run_at <= statement_timestamp() ORDER BY taskstore_tasks.priority DESC, taskstore_tasks.run_at, taskstore_tasks.id 
 LIMIT (SELECT CASE WHEN (room.n < $23::INTEGER) THEN $24::INTEGER WHEN (room.n < $25::INTEGER) THEN room.n ELSE $25::INTEGER END AS anon_3 
FROM (SELECT coalesce((SELECT CASE WHEN tally.alone THEN tally.counted WHEN (tally.counted < tally.freed) THEN tally.counted ELSE tally.freed END AS anon_4 
FROM (SELECT bumped.before = (SELECT taskstore_queues.claims 
FROM taskstore_queues 
WHERE taskstore_queues.name = $22::VARCHAR) AS alone, (bumped.concurrency - (SELECT count(*) AS count_1 
FROM taskstore_tasks 
WHERE taskstore_tasks.queue = $22::VARCHAR AND status IN ('assigned', 'running'))) + (SELECT count(*) AS count_2 
FROM done 
WHERE done.queue = $22::VARCHAR) AS counted, (SELECT count(*) AS count_2 
FROM done 
WHERE done.queue = $22::VARCHAR) AS freed 
FROM bumped
 LIMIT ALL OFFSET $28::INTEGER) AS tally), $29::INTEGER) AS n
 LIMIT ALL OFFSET $30::INTEGER) AS room) FOR UPDATE SKIP LOCKED), 
refill AS 
(UPDATE taskstore_tasks SET status=$11::VARCHAR, attempts=(taskstore_tasks.attempts + $12::INTEGER), claims=(taskstore_tasks.claims + $13::INTEGER), updated_at=statement_timestamp(), started_at=statement_timestamp(), worker_id=$8::VARCHAR, lease_expires_at=(statement_timestamp() + make_interval($14::INTEGER, $15::INTEGER, $16::INTEGER, $17::INTEGER, $18::INTEGER, $19::INTEGER, $20::FLOAT)) FROM picked WHERE taskstore_tasks.id = picked.id RETURNING taskstore_tasks.id, taskstore_tasks.name, taskstore_tasks.queue, taskstore_tasks.payload, taskstore_tasks.attempts, taskstore_tasks.max_attempts, taskstore_tasks.priority, taskstore_tasks.run_at, taskstore_tasks.trace_context, taskstore_tasks.claims)
 SELECT $1::BOOLEAN AS ended, done.watched, done.id, CAST(NULL AS VARCHAR(200)) AS name, CAST(NULL AS VARCHAR(64)) AS queue, CAST(NULL AS JSONB) AS payload, CAST(NULL AS INTEGER) AS attempts, CAST(NULL AS INTEGER) AS max_attempts, CAST(NULL AS SMALLINT) AS priority, CAST(NULL AS TIMESTAMP WITH TIME ZONE) AS run_at, CAST(NULL AS VARCHAR(512)) AS trace_context, CAST(NULL AS INTEGER) AS claims 
FROM done UNION ALL SELECT $9::BOOLEAN AS anon_1, $10::BOOLEAN AS anon_2, refill.id, refill.name, refill.queue, refill.payload, refill.attempts, refill.max_attempts, refill.priority, refill.run_at, refill.trace_context, refill.claims 
FROM refill;

-- keyed ack and refill: completions, and the keyed claim of the keys they free (where one statement can)
-- parameters: param_1, param_2, param_3, param_4, batch_fence, batch_doc, batch_id, p_worker_id, param_5, param_6, param_7, attempts_1, claims_1, make_interval_1, make_interval_2, make_interval_3, make_interval_4, make_interval_5, make_interval_6, p_lease, param_8, p_queue, p_scan, p_key_limit, coalesce_1, param_9, param_10, param_11, n_1, p_keys, coalesce_2, p_limit, param_12, claims_2, claims_3, coalesce_3
WITH RECURSIVE done AS 
(UPDATE taskstore_tasks SET status=$2::VARCHAR, updated_at=statement_timestamp(), finished_at=statement_timestamp(), lease_expires_at=$3::TIMESTAMP WITH TIME ZONE, progress=$4::FLOAT, result=CAST(batch.doc AS JSONB) FROM (SELECT batch_rows.id AS id, ($5::INTEGER[])[batch_rows.i] AS fence, ($6::TEXT[])[batch_rows.i] AS doc 
FROM unnest($7::BIGINT[]) WITH ORDINALITY AS batch_rows(id, i)) AS batch WHERE taskstore_tasks.id = batch.id AND taskstore_tasks.id = ANY ($7::BIGINT[]) AND taskstore_tasks.claims = batch.fence AND taskstore_tasks.worker_id = $8::VARCHAR AND status IN ('running') RETURNING taskstore_tasks.id, taskstore_tasks.watched, taskstore_tasks.queue), 
front AS 
(SELECT taskstore_tasks.id AS id, taskstore_tasks.name AS name, taskstore_tasks.concurrency_key AS ckey, taskstore_tasks.priority AS priority, taskstore_tasks.run_at AS run_at 
FROM taskstore_tasks 
WHERE status IN ('created', 'not_finished') AND (taskstore_tasks.status = $21::VARCHAR OR taskstore_tasks.worker_id IS NOT NULL) AND taskstore_tasks.queue = $22::VARCHAR AND taskstore_tasks.run_at <= statement_timestamp() ORDER BY taskstore_tasks.priority DESC, taskstore_tasks.run_at, taskstore_tasks.id 
 LIMIT $23::INTEGER), 
groups AS 
(SELECT front.ckey AS ckey, count(*) AS n 
FROM front GROUP BY front.ckey), 
keys AS 
(SELECT groups.ckey AS ckey 
FROM groups 
WHERE groups.ckey IS NOT NULL), 
busy AS MATERIALIZED 
(SELECT taskstore_tasks.concurrency_key AS ckey, count(*) AS n 
FROM taskstore_tasks 
WHERE taskstore_tasks.queue = $22::VARCHAR AND status IN ('assigned', 'running') AND taskstore_tasks.concurrency_key IS NOT NULL AND (taskstore_tasks.id NOT IN (SELECT done.id 
FROM done)) GROUP BY taskstore_tasks.concurrency_key), 
seen(ckey, n) AS 
(SELECT (SELECT min(next.concurrency_key) AS min_1 
FROM taskstore_tasks AS next 
WHERE status IN ('created', 'not_finished') AND concurrency_key IS NOT NULL AND next.queue = $22::VARCHAR) AS ckey, $28::INTEGER AS n 
WHERE (SELECT sum(groups.n) AS sum_1 
FROM groups) >= $23::INTEGER UNION ALL SELECT (SELECT min(next.concurrency_key) AS min_2 
FROM taskstore_tasks AS next 
WHERE status IN ('created', 'not_finished') AND concurrency_key IS NOT NULL AND next.queue = $22::VARCHAR AND next.concurrency_key > seen.ckey) AS anon_3, seen.n + $29::INTEGER AS anon_4 
FROM seen 
WHERE seen.ckey IS NOT NULL AND seen.n < $30::INTEGER), 
heads AS MATERIALIZED 
(SELECT seen.ckey AS ckey, (SELECT first.id 
FROM (SELECT k.id AS id, k.priority AS priority, k.status AS status, k.worker_id AS worker_id, k.run_at AS run_at, k.name AS name 
FROM taskstore_tasks AS k 
WHERE status IN ('created', 'not_finished') AND concurrency_key IS NOT NULL AND k.queue = $22::VARCHAR AND k.concurrency_key = seen.ckey AND (k.run_at <= statement_timestamp() OR k.started_at IS NOT NULL) ORDER BY k.priority DESC, k.id 
 LIMIT $26::INTEGER) AS first 
WHERE (first.status = $27::VARCHAR OR first.worker_id IS NOT NULL) AND first.run_at <= statement_timestamp()) AS head 
FROM seen 
WHERE seen.ckey IS NOT NULL AND (seen.ckey NOT IN (SELECT keys.ckey 
FROM keys))), 
bumped AS 
(UPDATE taskstore_queues SET claims=(taskstore_queues.claims + $34::BIGINT) WHERE taskstore_queues.name = $22::VARCHAR AND taskstore_queues.paused IS false AND taskstore_queues.concurrency IS NULL AND taskstore_queues.rate_limit IS NULL AND taskstore_queues.key_concurrency = $24::INTEGER RETURNING taskstore_queues.claims - $35::BIGINT AS before), 
picked AS 
(SELECT picks.id AS id 
FROM (SELECT front.id AS id, front.priority AS priority, front.run_at AS run_at 
FROM front 
WHERE front.ckey IS NULL OR front.id IN (SELECT placed.id 
FROM (SELECT keys.ckey AS ckey, firsts.id AS id, row_number() OVER (PARTITION BY keys.ckey ORDER BY firsts.priority DESC, firsts.id) AS place 
FROM keys JOIN LATERAL (SELECT k.id AS id, k.priority AS priority 
FROM taskstore_tasks AS k 
WHERE status IN ('created', 'not_finished') AND concurrency_key IS NOT NULL AND k.queue = $22::VARCHAR AND k.concurrency_key = keys.ckey AND (k.run_at <= statement_timestamp() OR k.started_at IS NOT NULL) ORDER BY k.priority DESC, k.id 
 LIMIT $24::INTEGER) AS firsts ON true) AS placed LEFT OUTER JOIN busy ON busy.ckey = placed.ckey 
WHERE placed.place + coalesce(busy.n, $25::INTEGER) <= $24::INTEGER) UNION ALL SELECT heads.head AS id, (SELECT taskstore_tasks.priority 
FROM taskstore_tasks 
WHERE taskstore_tasks.id = heads.head) AS priority, (SELECT taskstore_tasks.run_at 
FROM taskstore_tasks 
WHERE taskstore_tasks.id = heads.head) AS run_at 
FROM heads LEFT OUTER JOIN busy ON busy.ckey = heads.ckey 
WHERE heads.head IS NOT NULL AND coalesce(busy.n, $31::INTEGER) < $24::INTEGER) AS picks ORDER BY picks.priority DESC, picks.run_at, picks.id 
 LIMIT coalesce((SELECT CASE WHEN (bumped.before = (SELECT taskstore_queues.claims 
FROM taskstore_queues 
WHERE taskstore_queues.name = $22::VARCHAR)) THEN $32::INTEGER ELSE $33::INTEGER END AS anon_5 
FROM bumped), $36::INTEGER)), 
refill AS 
(UPDATE taskstore_tasks SET status=$11::VARCHAR, attempts=(taskstore_tasks.attempts + $12::INTEGER), claims=(taskstore_tasks.claims + $13::INTEGER), updated_at=statement_timestamp(), started_at=statement_timestamp(), worker_id=$8::VARCHAR, lease_expires_at=(statement_timestamp() + make_interval($14::INTEGER, $15::INTEGER, $16::INTEGER, $17::INTEGER, $18::INTEGER, $19::INTEGER, $20::FLOAT)) FROM picked WHERE taskstore_tasks.id = picked.id AND status IN ('created', 'not_finished') RETURNING taskstore_tasks.id, taskstore_tasks.name, taskstore_tasks.queue, taskstore_tasks.payload, taskstore_tasks.attempts, taskstore_tasks.max_attempts, taskstore_tasks.priority, taskstore_tasks.run_at, taskstore_tasks.trace_context, taskstore_tasks.claims)
 SELECT $1::BOOLEAN AS ended, done.watched, done.id, CAST(NULL AS VARCHAR(200)) AS name, CAST(NULL AS VARCHAR(64)) AS queue, CAST(NULL AS JSONB) AS payload, CAST(NULL AS INTEGER) AS attempts, CAST(NULL AS INTEGER) AS max_attempts, CAST(NULL AS SMALLINT) AS priority, CAST(NULL AS TIMESTAMP WITH TIME ZONE) AS run_at, CAST(NULL AS VARCHAR(512)) AS trace_context, CAST(NULL AS INTEGER) AS claims 
FROM done UNION ALL SELECT $9::BOOLEAN AS anon_1, $10::BOOLEAN AS anon_2, refill.id, refill.name, refill.queue, refill.payload, refill.attempts, refill.max_attempts, refill.priority, refill.run_at, refill.trace_context, refill.claims 
FROM refill;

-- retry: a failed attempt with attempts left, fenced
-- parameters: status, make_interval_1, make_interval_2, make_interval_3, make_interval_4, make_interval_5, make_interval_6, p_retry_in, worker_id, lease_expires_at, p_error, p_task_id, p_worker_id, p_fence
UPDATE taskstore_tasks SET status=$1::VARCHAR, run_at=(statement_timestamp() + make_interval($2::INTEGER, $3::INTEGER, $4::INTEGER, $5::INTEGER, $6::INTEGER, $7::INTEGER, $8::FLOAT)), updated_at=statement_timestamp(), worker_id=$9::VARCHAR, lease_expires_at=$10::TIMESTAMP WITH TIME ZONE, error=$11::JSONB WHERE taskstore_tasks.id = $12::BIGINT AND status IN ('running') AND taskstore_tasks.worker_id = $13::VARCHAR AND taskstore_tasks.claims = $14::INTEGER RETURNING taskstore_tasks.id, taskstore_tasks.watched;

-- fail: a failed attempt with none left, fenced
-- parameters: status, lease_expires_at, p_error, p_task_id, p_worker_id, p_fence
UPDATE taskstore_tasks SET status=$1::VARCHAR, updated_at=statement_timestamp(), finished_at=statement_timestamp(), lease_expires_at=$2::TIMESTAMP WITH TIME ZONE, error=$3::JSONB WHERE taskstore_tasks.id = $4::BIGINT AND status IN ('running') AND taskstore_tasks.worker_id = $5::VARCHAR AND taskstore_tasks.claims = $6::INTEGER RETURNING taskstore_tasks.id, taskstore_tasks.watched;

-- heartbeat: every lease the worker holds, in one statement
-- parameters: make_interval_1, make_interval_2, make_interval_3, make_interval_4, make_interval_5, make_interval_6, p_lease, p_worker_id, p_ids
UPDATE taskstore_tasks SET lease_expires_at=(statement_timestamp() + make_interval($1::INTEGER, $2::INTEGER, $3::INTEGER, $4::INTEGER, $5::INTEGER, $6::INTEGER, $7::FLOAT)) WHERE taskstore_tasks.worker_id = $8::VARCHAR AND status IN ('assigned', 'running') AND taskstore_tasks.id = ANY ($9::BIGINT[]) RETURNING taskstore_tasks.id;

-- interrupt: attempts cut off by a graceful stop, not charged
-- parameters: status, attempts_1, p_delay, param_1, make_interval_1, make_interval_2, make_interval_3, make_interval_4, make_interval_5, make_interval_6, lease_expires_at, batch_fence, batch_doc, batch_id, p_worker_id
UPDATE taskstore_tasks SET status=$1::VARCHAR, attempts=(taskstore_tasks.attempts - $2::INTEGER), run_at=CASE WHEN ($3::FLOAT > $4::INTEGER) THEN statement_timestamp() + make_interval($5::INTEGER, $6::INTEGER, $7::INTEGER, $8::INTEGER, $9::INTEGER, $10::INTEGER, $3::FLOAT) ELSE taskstore_tasks.run_at END, updated_at=statement_timestamp(), lease_expires_at=$11::TIMESTAMP WITH TIME ZONE, error=CAST(batch.doc AS JSONB) FROM (SELECT batch_rows.id AS id, ($12::INTEGER[])[batch_rows.i] AS fence, ($13::TEXT[])[batch_rows.i] AS doc 
FROM unnest($14::BIGINT[]) WITH ORDINALITY AS batch_rows(id, i)) AS batch WHERE taskstore_tasks.id = batch.id AND taskstore_tasks.id = ANY ($14::BIGINT[]) AND taskstore_tasks.claims = batch.fence AND taskstore_tasks.worker_id = $15::VARCHAR AND status IN ('assigned', 'running') RETURNING taskstore_tasks.id;

-- release: claimed tasks never run, handed back uncharged
-- parameters: status, attempts_1, p_delay, param_1, make_interval_1, make_interval_2, make_interval_3, make_interval_4, make_interval_5, make_interval_6, worker_id, lease_expires_at, batch_fence, batch_doc, batch_id, p_worker_id
UPDATE taskstore_tasks SET status=$1::VARCHAR, attempts=(taskstore_tasks.attempts - $2::INTEGER), run_at=CASE WHEN ($3::FLOAT > $4::INTEGER) THEN statement_timestamp() + make_interval($5::INTEGER, $6::INTEGER, $7::INTEGER, $8::INTEGER, $9::INTEGER, $10::INTEGER, $3::FLOAT) ELSE taskstore_tasks.run_at END, updated_at=statement_timestamp(), worker_id=$11::VARCHAR, lease_expires_at=$12::TIMESTAMP WITH TIME ZONE FROM (SELECT batch_rows.id AS id, ($13::INTEGER[])[batch_rows.i] AS fence, ($14::TEXT[])[batch_rows.i] AS doc 
FROM unnest($15::BIGINT[]) WITH ORDINALITY AS batch_rows(id, i)) AS batch WHERE taskstore_tasks.id = batch.id AND taskstore_tasks.id = ANY ($15::BIGINT[]) AND taskstore_tasks.claims = batch.fence AND taskstore_tasks.worker_id = $16::VARCHAR AND status IN ('assigned', 'running') RETURNING taskstore_tasks.id;

-- rescue: tasks whose lease expired
-- parameters: param_1, param_2, param_3, worker_id, lease_expires_at, param_4, param_5
WITH picked AS 
(SELECT taskstore_tasks.id AS id 
FROM taskstore_tasks 
WHERE status IN ('assigned', 'running') AND taskstore_tasks.lease_expires_at < statement_timestamp() 
 LIMIT $7::INTEGER FOR UPDATE SKIP LOCKED)
 UPDATE taskstore_tasks SET status=CASE WHEN (taskstore_tasks.status = $1::VARCHAR AND taskstore_tasks.max_attempts IS NOT NULL AND taskstore_tasks.attempts >= taskstore_tasks.max_attempts) THEN $2::VARCHAR ELSE $3::VARCHAR END, updated_at=statement_timestamp(), finished_at=CASE WHEN (taskstore_tasks.status = $1::VARCHAR AND taskstore_tasks.max_attempts IS NOT NULL AND taskstore_tasks.attempts >= taskstore_tasks.max_attempts) THEN statement_timestamp() ELSE NULL END, worker_id=$4::VARCHAR, lease_expires_at=$5::TIMESTAMP WITH TIME ZONE, error=CAST($6::VARCHAR AS JSONB) FROM picked WHERE taskstore_tasks.id = picked.id AND status IN ('assigned', 'running') RETURNING taskstore_tasks.id, taskstore_tasks.status;
