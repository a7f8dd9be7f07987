-- Hot statements of taskstore on sqlite, as compiled for its driver.
-- Written by docs/sql/render.py from the code; do not edit by hand.

-- enqueue, enqueue_many: a batch of new tasks, any size, one statement
-- parameters: strftime_1, strftime_2, printf_1, strftime_3, strftime_4, strftime_3, strftime_4, strftime_3, strftime_4, json_extract_1, json_extract_2, json_extract_3, json_extract_4, json_extract_5, json_extract_6, json_extract_7, json_extract_8, json_extract_9, new
INSERT INTO taskstore_tasks (name, queue, payload, priority, max_attempts, run_at, created_at, updated_at, concurrency_key, trace_context) SELECT new.name, new.queue, new.payload, new.priority, new.max_attempts, coalesce(new.run_at, strftime(?, ?, printf(?, new.delay)), strftime(?, ?)) AS coalesce_1, strftime(?, ?) AS strftime_5, strftime(?, ?) AS strftime__1, new.concurrency_key, new.trace_context 
FROM (SELECT json_extract(anon_1.value, ?) AS name, json_extract(anon_1.value, ?) AS queue, json_extract(anon_1.value, ?) AS payload, json_extract(anon_1.value, ?) AS priority, json_extract(anon_1.value, ?) AS max_attempts, json_extract(anon_1.value, ?) AS run_at, json_extract(anon_1.value, ?) AS delay, json_extract(anon_1.value, ?) AS concurrency_key, json_extract(anon_1.value, ?) AS trace_context 
FROM json_each(?) AS anon_1) AS new RETURNING id;

-- enqueue of one task: its values bound directly
-- parameters: p_name, p_queue, p_payload, p_priority, p_max_attempts, p_run_at, strftime_1, strftime_2, printf_1, p_delay, strftime_3, strftime_4, strftime_3, strftime_4, strftime_3, strftime_4, p_concurrency_key, p_trace_context
INSERT INTO taskstore_tasks (name, queue, payload, priority, max_attempts, run_at, created_at, updated_at, concurrency_key, trace_context) VALUES (?, ?, ?, ?, ?, coalesce(?, strftime(?, ?, printf(?, ?)), strftime(?, ?)), strftime(?, ?), strftime(?, ?), ?, ?) RETURNING id;

-- enqueue with dedup_key: one row per key; a live task's key is skipped
-- parameters: p_name, p_queue, p_payload, p_priority, p_max_attempts, p_run_at, strftime_1, strftime_2, printf_1, p_delay, strftime_3, strftime_4, strftime_3, strftime_4, strftime_3, strftime_4, p_dedup_key, p_concurrency_key, p_trace_context
INSERT INTO taskstore_tasks (name, queue, payload, priority, max_attempts, run_at, created_at, updated_at, dedup_key, concurrency_key, trace_context) VALUES (?, ?, ?, ?, ?, coalesce(?, strftime(?, ?, printf(?, ?)), strftime(?, ?)), strftime(?, ?), strftime(?, ?), ?, ?, ?) ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL AND (status = 'assigned' OR status = 'created' OR status = 'not_finished' OR status = 'running') DO NOTHING RETURNING id, dedup_key;

-- claim: a batch, claimed and started at once
-- parameters: status, attempts_1, claims_1, strftime_1, strftime_2, strftime_1, strftime_2, p_worker_id, strftime_3, strftime_4, printf_1, p_lease, param_1, p_queue, strftime_1, strftime_2, p_queue, p_limit, param_2
UPDATE taskstore_tasks SET status=?, attempts=(taskstore_tasks.attempts + ?), claims=(taskstore_tasks.claims + ?), updated_at=strftime(?, ?), started_at=strftime(?, ?), worker_id=?, lease_expires_at=strftime(?, ?, printf(?, ?)) WHERE taskstore_tasks.id IN (SELECT taskstore_tasks.id 
FROM taskstore_tasks 
WHERE status IN ('created', 'not_finished') AND (taskstore_tasks.status = ? OR taskstore_tasks.worker_id IS NOT NULL) AND taskstore_tasks.queue = ? AND taskstore_tasks.run_at <= strftime(?, ?) AND NOT (EXISTS (SELECT * 
FROM taskstore_queues 
WHERE taskstore_queues.name = ? AND (taskstore_queues.paused = 1 OR taskstore_queues.concurrency IS NOT NULL OR taskstore_queues.rate_limit IS NOT NULL OR taskstore_queues.key_concurrency IS NOT NULL))) ORDER BY taskstore_tasks.priority DESC, taskstore_tasks.run_at, taskstore_tasks.id
 LIMIT ? OFFSET ?) RETURNING id, name, queue, payload, attempts, max_attempts, priority, run_at, trace_context, claims;

-- orphan claim: one task rescued from a dead worker
-- parameters: status, attempts_1, claims_1, strftime_1, strftime_2, strftime_1, strftime_2, p_worker_id, strftime_3, strftime_4, printf_1, p_lease, p_queue, strftime_1, strftime_2, p_queue, p_limit, param_1
UPDATE taskstore_tasks SET status=?, attempts=(taskstore_tasks.attempts + ?), claims=(taskstore_tasks.claims + ?), updated_at=strftime(?, ?), started_at=strftime(?, ?), worker_id=?, lease_expires_at=strftime(?, ?, printf(?, ?)) WHERE taskstore_tasks.id IN (SELECT taskstore_tasks.id 
FROM taskstore_tasks 
WHERE status IN ('not_finished') AND worker_id IS NULL AND taskstore_tasks.queue = ? AND taskstore_tasks.run_at <= strftime(?, ?) AND NOT (EXISTS (SELECT * 
FROM taskstore_queues 
WHERE taskstore_queues.name = ? AND (taskstore_queues.paused = 1 OR taskstore_queues.concurrency IS NOT NULL OR taskstore_queues.rate_limit IS NOT NULL OR taskstore_queues.key_concurrency IS NOT NULL))) ORDER BY taskstore_tasks.priority DESC, taskstore_tasks.run_at, taskstore_tasks.id
 LIMIT ? OFFSET ?) RETURNING id, name, queue, payload, attempts, max_attempts, priority, run_at, trace_context, claims;

-- limited claim: a queue with flow control, its row locked; per-key limit applied
-- parameters: param_1, p_queue, strftime_1, strftime_2, p_scan, param_2, p_queue, param_7, p_scan, p_queue, n_1, p_keys, p_queue, strftime_1, strftime_2, param_4, param_5, param_6, strftime_1, strftime_2, status, attempts_1, claims_1, strftime_1, strftime_2, strftime_1, strftime_2, p_worker_id, strftime_3, strftime_4, printf_1, p_lease, p_queue, strftime_1, strftime_2, p_key_limit, param_3, p_key_limit, coalesce_1, p_queue, room_1, p_queue, coalesce_2, p_key_limit, p_limit, param_8
WITH RECURSIVE front AS 
(SELECT taskstore_tasks.id AS id, taskstore_tasks.name AS name, taskstore_tasks.concurrency_key AS ckey, taskstore_tasks.priority AS priority, taskstore_tasks.run_at AS run_at 
FROM taskstore_tasks 
WHERE status IN ('created', 'not_finished') AND (taskstore_tasks.status = ? OR taskstore_tasks.worker_id IS NOT NULL) AND taskstore_tasks.queue = ? AND taskstore_tasks.run_at <= strftime(?, ?) ORDER BY taskstore_tasks.priority DESC, taskstore_tasks.run_at, taskstore_tasks.id
 LIMIT ? OFFSET ?), 
keys AS 
(SELECT DISTINCT front.ckey AS ckey 
FROM front 
WHERE front.ckey IS NOT NULL), 
seen(ckey, n) AS 
(SELECT (SELECT min(next.concurrency_key) AS min_1 
FROM taskstore_tasks AS next 
WHERE status IN ('created', 'not_finished') AND concurrency_key IS NOT NULL AND next.queue = ?) AS ckey, ? AS n 
WHERE (SELECT count(*) AS count_1 
FROM front) >= ? UNION ALL SELECT (SELECT min(next.concurrency_key) AS min_2 
FROM taskstore_tasks AS next 
WHERE status IN ('created', 'not_finished') AND concurrency_key IS NOT NULL AND next.queue = ? AND next.concurrency_key > seen.ckey) AS anon_1, seen.n + ? AS anon_2 
FROM seen 
WHERE seen.ckey IS NOT NULL AND seen.n < ?), 
heads AS MATERIALIZED 
(SELECT seen.ckey AS ckey, (SELECT first.id 
FROM (SELECT k.id AS id, k.priority AS priority, k.status AS status, k.worker_id AS worker_id, k.run_at AS run_at, k.name AS name 
FROM taskstore_tasks AS k 
WHERE status IN ('created', 'not_finished') AND concurrency_key IS NOT NULL AND k.queue = ? AND k.concurrency_key = seen.ckey AND (k.run_at <= strftime(?, ?) OR k.started_at IS NOT NULL) ORDER BY k.priority DESC, k.id
 LIMIT ? OFFSET ?) AS first 
WHERE (first.status = ? OR first.worker_id IS NOT NULL) AND first.run_at <= strftime(?, ?)) AS head 
FROM seen 
WHERE seen.ckey IS NOT NULL AND (seen.ckey NOT IN (SELECT keys.ckey 
FROM keys)))
 UPDATE taskstore_tasks SET status=?, attempts=(taskstore_tasks.attempts + ?), claims=(taskstore_tasks.claims + ?), updated_at=strftime(?, ?), started_at=strftime(?, ?), worker_id=?, lease_expires_at=strftime(?, ?, printf(?, ?)) WHERE taskstore_tasks.id IN (SELECT picks.id 
FROM (SELECT front.id AS id, front.priority AS priority, front.run_at AS run_at 
FROM front LEFT OUTER JOIN (SELECT edges.ckey AS ckey, e.id AS id, e.priority AS priority 
FROM (SELECT rooms.ckey AS ckey, (SELECT placed.id 
FROM (SELECT first.id AS id, row_number() OVER (ORDER BY first.priority DESC, first.id) AS place 
FROM (SELECT k.id AS id, k.priority AS priority 
FROM taskstore_tasks AS k 
WHERE status IN ('created', 'not_finished') AND concurrency_key IS NOT NULL AND k.queue = ? AND k.concurrency_key = rooms.ckey AND (k.run_at <= strftime(?, ?) OR k.started_at IS NOT NULL) ORDER BY k.priority DESC, k.id
 LIMIT ? OFFSET ?) AS first) AS placed 
WHERE placed.place = rooms.room) AS last 
FROM (SELECT keys.ckey AS ckey, ? - coalesce(busy.n, ?) AS room 
FROM keys LEFT OUTER JOIN (SELECT taskstore_tasks.concurrency_key AS ckey, count(*) AS n 
FROM taskstore_tasks 
WHERE taskstore_tasks.queue = ? AND status IN ('assigned', 'running') AND taskstore_tasks.concurrency_key IS NOT NULL GROUP BY taskstore_tasks.concurrency_key) AS busy ON busy.ckey = keys.ckey) AS rooms 
WHERE rooms.room > ?) AS edges LEFT OUTER JOIN taskstore_tasks AS e ON e.id = edges.last) AS bound ON bound.ckey = front.ckey 
WHERE front.ckey IS NULL OR bound.ckey IS NOT NULL AND (bound.id IS NULL OR front.priority > bound.priority OR front.priority = bound.priority AND front.id <= bound.id) UNION ALL SELECT heads.head AS id, (SELECT taskstore_tasks.priority 
FROM taskstore_tasks 
WHERE taskstore_tasks.id = heads.head) AS priority, (SELECT taskstore_tasks.run_at 
FROM taskstore_tasks 
WHERE taskstore_tasks.id = heads.head) AS run_at 
FROM heads LEFT OUTER JOIN (SELECT taskstore_tasks.concurrency_key AS ckey, count(*) AS n 
FROM taskstore_tasks 
WHERE taskstore_tasks.queue = ? AND status IN ('assigned', 'running') AND taskstore_tasks.concurrency_key IS NOT NULL GROUP BY taskstore_tasks.concurrency_key) AS busy ON busy.ckey = heads.ckey 
WHERE heads.head IS NOT NULL AND coalesce(busy.n, ?) < ?) AS picks ORDER BY picks.priority DESC, picks.run_at, picks.id
 LIMIT ? OFFSET ?) AND status IN ('created', 'not_finished') RETURNING id, name, queue, payload, attempts, max_attempts, priority, run_at, trace_context, claims;

-- counted claim: a queue whose only limit is its concurrency, counted in the claim itself
-- parameters: status, attempts_1, claims_1, strftime_1, strftime_2, strftime_1, strftime_2, p_worker_id, strftime_3, strftime_4, printf_1, p_lease, param_1, p_queue, strftime_1, strftime_2, n_1, param_2, p_limit, p_limit, p_queue, p_queue, coalesce_1, param_3
UPDATE taskstore_tasks SET status=?, attempts=(taskstore_tasks.attempts + ?), claims=(taskstore_tasks.claims + ?), updated_at=strftime(?, ?), started_at=strftime(?, ?), worker_id=?, lease_expires_at=strftime(?, ?, printf(?, ?)) WHERE taskstore_tasks.id IN (SELECT taskstore_tasks.id 
FROM taskstore_tasks 
WHERE status IN ('created', 'not_finished') AND (taskstore_tasks.status = ? OR taskstore_tasks.worker_id IS NOT NULL) AND taskstore_tasks.queue = ? AND taskstore_tasks.run_at <= strftime(?, ?) ORDER BY taskstore_tasks.priority DESC, taskstore_tasks.run_at, taskstore_tasks.id
 LIMIT (SELECT CASE WHEN (room.n < ?) THEN ? WHEN (room.n < ?) THEN room.n ELSE ? END AS anon_1 
FROM (SELECT coalesce((SELECT taskstore_queues.concurrency - (SELECT count(*) AS count_1 
FROM taskstore_tasks 
WHERE taskstore_tasks.queue = ? AND status IN ('assigned', 'running')) AS anon_2 
FROM taskstore_queues 
WHERE taskstore_queues.name = ? AND taskstore_queues.paused IS 0 AND taskstore_queues.concurrency IS NOT NULL AND taskstore_queues.rate_limit IS NULL AND taskstore_queues.key_concurrency IS NULL), ?) AS n) AS room) OFFSET ?) RETURNING id, name, queue, payload, attempts, max_attempts, priority, run_at, trace_context, claims;

-- keyed claim: a queue whose only limit is its key concurrency, gated in the claim itself
-- parameters: param_1, p_queue, strftime_1, strftime_2, p_scan, param_2, p_queue, param_7, p_scan, p_queue, n_1, p_keys, p_queue, strftime_1, strftime_2, param_4, param_5, param_6, strftime_1, strftime_2, status, attempts_1, claims_1, strftime_1, strftime_2, strftime_1, strftime_2, p_worker_id, strftime_3, strftime_4, printf_1, p_lease, p_queue, strftime_1, strftime_2, p_key_limit, param_3, p_key_limit, coalesce_1, p_queue, room_1, p_queue, coalesce_2, p_key_limit, p_limit, p_queue, p_key_limit, coalesce_3, param_8
WITH RECURSIVE front AS 
(SELECT taskstore_tasks.id AS id, taskstore_tasks.name AS name, taskstore_tasks.concurrency_key AS ckey, taskstore_tasks.priority AS priority, taskstore_tasks.run_at AS run_at 
FROM taskstore_tasks 
WHERE status IN ('created', 'not_finished') AND (taskstore_tasks.status = ? OR taskstore_tasks.worker_id IS NOT NULL) AND taskstore_tasks.queue = ? AND taskstore_tasks.run_at <= strftime(?, ?) ORDER BY taskstore_tasks.priority DESC, taskstore_tasks.run_at, taskstore_tasks.id
 LIMIT ? OFFSET ?), 
keys AS 
(SELECT DISTINCT front.ckey AS ckey 
FROM front 
WHERE front.ckey IS NOT NULL), 
seen(ckey, n) AS 
(SELECT (SELECT min(next.concurrency_key) AS min_1 
FROM taskstore_tasks AS next 
WHERE status IN ('created', 'not_finished') AND concurrency_key IS NOT NULL AND next.queue = ?) AS ckey, ? AS n 
WHERE (SELECT count(*) AS count_1 
FROM front) >= ? UNION ALL SELECT (SELECT min(next.concurrency_key) AS min_2 
FROM taskstore_tasks AS next 
WHERE status IN ('created', 'not_finished') AND concurrency_key IS NOT NULL AND next.queue = ? AND next.concurrency_key > seen.ckey) AS anon_1, seen.n + ? AS anon_2 
FROM seen 
WHERE seen.ckey IS NOT NULL AND seen.n < ?), 
heads AS MATERIALIZED 
(SELECT seen.ckey AS ckey, (SELECT first.id 
FROM (SELECT k.id AS id, k.priority AS priority, k.status AS status, k.worker_id AS worker_id, k.run_at AS run_at, k.name AS name 
FROM taskstore_tasks AS k 
WHERE status IN ('created', 'not_finished') AND concurrency_key IS NOT NULL AND k.queue = ? AND k.concurrency_key = seen.ckey AND (k.run_at <= strftime(?, ?) OR k.started_at IS NOT NULL) ORDER BY k.priority DESC, k.id
 LIMIT ? OFFSET ?) AS first 
WHERE (first.status = ? OR first.worker_id IS NOT NULL) AND first.run_at <= strftime(?, ?)) AS head 
FROM seen 
WHERE seen.ckey IS NOT NULL AND (seen.ckey NOT IN (SELECT keys.ckey 
FROM keys)))
 UPDATE taskstore_tasks SET status=?, attempts=(taskstore_tasks.attempts + ?), claims=(taskstore_tasks.claims + ?), updated_at=strftime(?, ?), started_at=strftime(?, ?), worker_id=?, lease_expires_at=strftime(?, ?, printf(?, ?)) WHERE taskstore_tasks.id IN (SELECT picks.id 
FROM (SELECT front.id AS id, front.priority AS priority, front.run_at AS run_at 
FROM front LEFT OUTER JOIN (SELECT edges.ckey AS ckey, e.id AS id, e.priority AS priority 
FROM (SELECT rooms.ckey AS ckey, (SELECT placed.id 
FROM (SELECT first.id AS id, row_number() OVER (ORDER BY first.priority DESC, first.id) AS place 
FROM (SELECT k.id AS id, k.priority AS priority 
FROM taskstore_tasks AS k 
WHERE status IN ('created', 'not_finished') AND concurrency_key IS NOT NULL AND k.queue = ? AND k.concurrency_key = rooms.ckey AND (k.run_at <= strftime(?, ?) OR k.started_at IS NOT NULL) ORDER BY k.priority DESC, k.id
 LIMIT ? OFFSET ?) AS first) AS placed 
WHERE placed.place = rooms.room) AS last 
FROM (SELECT keys.ckey AS ckey, ? - coalesce(busy.n, ?) AS room 
FROM keys LEFT OUTER JOIN (SELECT taskstore_tasks.concurrency_key AS ckey, count(*) AS n 
FROM taskstore_tasks 
WHERE taskstore_tasks.queue = ? AND status IN ('assigned', 'running') AND taskstore_tasks.concurrency_key IS NOT NULL GROUP BY taskstore_tasks.concurrency_key) AS busy ON busy.ckey = keys.ckey) AS rooms 
WHERE rooms.room > ?) AS edges LEFT OUTER JOIN taskstore_tasks AS e ON e.id = edges.last) AS bound ON bound.ckey = front.ckey 
WHERE front.ckey IS NULL OR bound.ckey IS NOT NULL AND (bound.id IS NULL OR front.priority > bound.priority OR front.priority = bound.priority AND front.id <= bound.id) UNION ALL SELECT heads.head AS id, (SELECT taskstore_tasks.priority 
FROM taskstore_tasks 
WHERE taskstore_tasks.id = heads.head) AS priority, (SELECT taskstore_tasks.run_at 
FROM taskstore_tasks 
WHERE taskstore_tasks.id = heads.head) AS run_at 
FROM heads LEFT OUTER JOIN (SELECT taskstore_tasks.concurrency_key AS ckey, count(*) AS n 
FROM taskstore_tasks 
WHERE taskstore_tasks.queue = ? AND status IN ('assigned', 'running') AND taskstore_tasks.concurrency_key IS NOT NULL GROUP BY taskstore_tasks.concurrency_key) AS busy ON busy.ckey = heads.ckey 
WHERE heads.head IS NOT NULL AND coalesce(busy.n, ?) < ?) AS picks ORDER BY picks.priority DESC, picks.run_at, picks.id
 LIMIT coalesce((SELECT ? AS anon_3 
FROM taskstore_queues 
WHERE taskstore_queues.name = ? AND taskstore_queues.paused IS 0 AND taskstore_queues.concurrency IS NULL AND taskstore_queues.rate_limit IS NULL AND taskstore_queues.key_concurrency = ?), ?) OFFSET ?) AND status IN ('created', 'not_finished') RETURNING id, name, queue, payload, attempts, max_attempts, priority, run_at, trace_context, claims;

-- ack: completions of a batch, fenced on (id, worker, attempt)
-- parameters: status, strftime_1, strftime_2, strftime_1, strftime_2, lease_expires_at, progress, json_extract_1, json_extract_2, json_extract_3, batch, p_worker_id
UPDATE taskstore_tasks SET status=?, updated_at=strftime(?, ?), finished_at=strftime(?, ?), lease_expires_at=?, progress=?, result=batch.doc FROM (SELECT json_extract(anon_1.value, ?) AS id, json_extract(anon_1.value, ?) AS fence, json_extract(anon_1.value, ?) AS doc 
FROM json_each(?) AS anon_1) AS batch WHERE taskstore_tasks.id = batch.id AND taskstore_tasks.claims = batch.fence AND taskstore_tasks.worker_id = ? AND status IN ('running') RETURNING id, watched;

-- retry: a failed attempt with attempts left, fenced
-- parameters: status, strftime_1, strftime_2, printf_1, p_retry_in, strftime_3, strftime_4, worker_id, lease_expires_at, p_error, p_task_id, p_worker_id, p_fence
UPDATE taskstore_tasks SET status=?, run_at=strftime(?, ?, printf(?, ?)), updated_at=strftime(?, ?), worker_id=?, lease_expires_at=?, error=? WHERE taskstore_tasks.id = ? AND status IN ('running') AND taskstore_tasks.worker_id = ? AND taskstore_tasks.claims = ? RETURNING id, watched;

-- fail: a failed attempt with none left, fenced
-- parameters: status, strftime_1, strftime_2, strftime_1, strftime_2, lease_expires_at, p_error, p_task_id, p_worker_id, p_fence
UPDATE taskstore_tasks SET status=?, updated_at=strftime(?, ?), finished_at=strftime(?, ?), lease_expires_at=?, error=? WHERE taskstore_tasks.id = ? AND status IN ('running') AND taskstore_tasks.worker_id = ? AND taskstore_tasks.claims = ? RETURNING id, watched;

-- heartbeat: every lease the worker holds, in one statement
-- parameters: strftime_1, strftime_2, printf_1, p_lease, p_worker_id, p_ids
UPDATE taskstore_tasks SET lease_expires_at=strftime(?, ?, printf(?, ?)) WHERE taskstore_tasks.worker_id = ? AND status IN ('assigned', 'running') AND taskstore_tasks.id IN (__[POSTCOMPILE_p_ids]) RETURNING id;

-- interrupt: attempts cut off by a graceful stop, not charged
-- parameters: status, attempts_1, p_delay, param_1, strftime_1, strftime_2, printf_1, p_delay, strftime_3, strftime_4, lease_expires_at, json_extract_1, json_extract_2, json_extract_3, batch, p_worker_id
UPDATE taskstore_tasks SET status=?, attempts=(taskstore_tasks.attempts - ?), run_at=CASE WHEN (? > ?) THEN strftime(?, ?, printf(?, ?)) ELSE taskstore_tasks.run_at END, updated_at=strftime(?, ?), lease_expires_at=?, error=batch.doc FROM (SELECT json_extract(anon_1.value, ?) AS id, json_extract(anon_1.value, ?) AS fence, json_extract(anon_1.value, ?) AS doc 
FROM json_each(?) AS anon_1) AS batch WHERE taskstore_tasks.id = batch.id AND taskstore_tasks.claims = batch.fence AND taskstore_tasks.worker_id = ? AND status IN ('assigned', 'running') RETURNING id;

-- release: claimed tasks never run, handed back uncharged
-- parameters: status, attempts_1, p_delay, param_1, strftime_1, strftime_2, printf_1, p_delay, strftime_3, strftime_4, worker_id, lease_expires_at, json_extract_1, json_extract_2, json_extract_3, batch, p_worker_id
UPDATE taskstore_tasks SET status=?, attempts=(taskstore_tasks.attempts - ?), run_at=CASE WHEN (? > ?) THEN strftime(?, ?, printf(?, ?)) ELSE taskstore_tasks.run_at END, updated_at=strftime(?, ?), worker_id=?, lease_expires_at=? FROM (SELECT json_extract(anon_1.value, ?) AS id, json_extract(anon_1.value, ?) AS fence, json_extract(anon_1.value, ?) AS doc 
FROM json_each(?) AS anon_1) AS batch WHERE taskstore_tasks.id = batch.id AND taskstore_tasks.claims = batch.fence AND taskstore_tasks.worker_id = ? AND status IN ('assigned', 'running') RETURNING id;

-- rescue: tasks whose lease expired
-- parameters: param_1, param_2, param_3, strftime_1, strftime_2, param_1, strftime_1, strftime_2, worker_id, lease_expires_at, error, strftime_1, strftime_2, param_4, param_5
UPDATE taskstore_tasks SET status=CASE WHEN (taskstore_tasks.status = ? AND taskstore_tasks.max_attempts IS NOT NULL AND taskstore_tasks.attempts >= taskstore_tasks.max_attempts) THEN ? ELSE ? END, updated_at=strftime(?, ?), finished_at=CASE WHEN (taskstore_tasks.status = ? AND taskstore_tasks.max_attempts IS NOT NULL AND taskstore_tasks.attempts >= taskstore_tasks.max_attempts) THEN strftime(?, ?) ELSE NULL END, worker_id=?, lease_expires_at=?, error=? WHERE taskstore_tasks.id IN (SELECT taskstore_tasks.id 
FROM taskstore_tasks 
WHERE status IN ('assigned', 'running') AND taskstore_tasks.lease_expires_at < strftime(?, ?)
 LIMIT ? OFFSET ?) AND status IN ('assigned', 'running') RETURNING id, status;
