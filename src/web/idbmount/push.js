/* push.js - pushing pending writes to the server and settling its answers.
 *
 * A batch is read from the outbox and the journal (outbox.js), each key
 * once, with the value its journal entry carries (journal.js) or else the
 * one its record holds at push time, and the revision it is based on
 * (revisions.js); the answer's revisions are recorded as one run per
 * batch, and the entries it covered are deleted in the same transaction.
 *
 * Conflicts (decision): the server's sequence decides. A push carries the
 * revision the local value was based on; when the server already has a
 * newer one it answers "conflict" with its current record, and the
 * `conflict` hook decides. The DEFAULT POLICY IS "server wins": the
 * server's current value replaces the local one, and a `conflict` event
 * carries the local value that lost, so nothing disappears silently. A hook
 * may return "local" (push the local value again on top of the server's
 * revision) or {value} (a merged value, pushed the same way).
 */
import { JOURNAL, OUTBOX, REVS, META, RELAXED, native, rawTransaction, silentTransactions } from './raw.js';
import { bytesToBase64url, encodeKey, encodeValueSync, decodeValue, JsonText } from './codec.js';
import { done, finished, readMany } from './idb.js';
import { RUN_FOLD_LIMIT, runRange, revisionsOf, foldRuns, addToRun, writeRuns, seqMark, raiseSeqMark } from './revisions.js';
import { newMutationId, isKeySet, moveToOutbox, compactJournal, pairId } from './outbox.js';
import { SyncError, classifyLocalError } from './failures.js';

/* Journal records above this count are compacted before a push: an
 * offline edit storm collapses to one outbox marker per key. */
const STORM_RECORDS = 64;

/* Compacts the journal into the outbox when it holds an edit storm (many
 * records) or, while batches are shrunk, records larger than a batch; or
 * always with `all`. Only the syncing tab calls it, so the batch it is
 * pushing cannot be moved under it. */
export async function compact(sync, all = false, records = null) {
	const db = await sync.connection();
	if (!db) return null;
	if (records === null) records = await done(native.txObjectStore.call(rawTransaction(db, [JOURNAL], 'readonly'), JOURNAL).count());
	if (!needsCompaction(sync, records, all)) return db;
	sync.checkLead();
	/* The revisions, the meta store and the app's stores too: key sets
	 * are resolved on the way (see keysOfSet). */
	const stores = sync.storeNames(db);
	const tx = rawTransaction(db, [JOURNAL, OUTBOX, REVS, META, ...stores], 'readwrite', RELAXED);
	silentTransactions.add(tx);
	const end = finished(tx);
	end.catch(() => {});
	const journal = native.txObjectStore.call(tx, JOURNAL);
	const count = await done(journal.count());
	if (all || count > STORM_RECORDS) {
		await compactJournal(tx, stores);
	} else if (count && sync.batchSize < sync.maxBatchSize) {
		/* Only after a 413 or 4xx shrank the batch: records larger than
		 * it are split into markers, so one write can be singled out. */
		const [keys, records] = await Promise.all([done(journal.getAllKeys()), done(journal.getAll())]);
		await moveToOutbox(tx, keys.map((k, i) => [k, records[i]]).filter(([, entries]) => entries.length > sync.batchSize), stores);
	}
	await end;
	return db;
}

function needsCompaction(sync, records, all = false) {
	return records > 0 && (all || records > STORM_RECORDS || sync.batchSize < sync.maxBatchSize);
}

/* Reads the next batch: outbox markers first (older writes), then whole
 * journal records, up to batchSize keys; each key once, with the value
 * its record holds now and the revision it is based on. A journal
 * write's mutation id is "<install id>.<journal key>.<index>": stable
 * across retries, unique across browsers. With `exclude` (see pushAll)
 * the writes of batches still in flight are left out: journal records
 * up to exclude.afterJournal and the outbox markers of exclude.markers
 * (pairId -> marker id), and nothing is compacted. */
export async function readBatch(sync, compacted = false, exclude = null) {
	const db = await sync.connection();
	const names = sync.storeNames(db);
	const tx = rawTransaction(db, [JOURNAL, OUTBOX, REVS, ...names], 'readonly');
	const outbox = native.txObjectStore.call(tx, OUTBOX);
	const journal = native.txObjectStore.call(tx, JOURNAL);
	const revs = native.txObjectStore.call(tx, REVS);
	/* Counted in this transaction: a separate one would wait behind the
	 * app's writes (they all hold the journal) once more per batch. */
	const counting = done(journal.count());
	const picked = new Map();
	const journalKeys = [];
	const outboxIds = new Map();
	/* The markers are read while the journal is counted (one round trip
	 * less per batch); when it must be compacted first they are read
	 * again after. */
	const markers = new Promise((resolve, reject) => {
		const req = outbox.openCursor();
		req.onsuccess = () => {
			const c = req.result;
			if (!c) return resolve();
			const id = pairId(c.key[0], c.key[1]);
			outboxIds.set(id, c.value.id);
			const inFlight = exclude !== null && exclude.markers.get(id) === c.value.id;
			if (!c.value.rejected && !inFlight && picked.size < sync.batchSize)
				picked.set(id, { store: c.key[0], key: c.key[1], id: c.value.id, from: 'outbox' });
			c.continue();
		};
		req.onerror = () => reject(req.error);
	});
	markers.catch(() => {});
	const records = await counting;
	if (!compacted && !exclude && needsCompaction(sync, records)) {
		await compact(sync, false, records);
		return sync.readBatch(true);
	}
	await markers;
	let keySets = false;
	if (picked.size < sync.batchSize) {
		await new Promise((resolve, reject) => {
			const after = exclude?.afterJournal ?? null;
			const req = journal.openCursor(after === null ? null : IDBKeyRange.lowerBound(after, true));
			req.onsuccess = () => {
				const c = req.result;
				if (!c) return resolve();
				/* A record with key sets is resolved into the outbox
				 * first (compaction), never read ahead. */
				if (c.value.some(isKeySet)) {
					keySets = true;
					return resolve();
				}
				if (journalKeys.length && picked.size + c.value.length > sync.batchSize) return resolve();
				journalKeys.push(c.key);
				c.value.forEach(([store, key, text], i) => {
					const id = pairId(store, key);
					picked.delete(id); /* the newer write wins; its ack settles both */
					picked.set(id, { store, key, id: `${sync.installId}.${c.key}.${i}`, from: 'journal', text });
				});
				c.continue();
			};
			req.onerror = () => reject(req.error);
		});
	}
	if (keySets && !exclude) {
		await compact(sync, true);
		return sync.readBatch(true);
	}
	const batch = [...picked.entries()].map(([pid, m]) => ({ ...m, pid, marker: outboxIds.get(pid) }));
	batch.stoppedAtKeySets = keySets;
	const byStore = new Map();
	for (const m of batch) {
		if (!byStore.has(m.store)) byStore.set(m.store, []);
		byStore.get(m.store).push(m);
	}
	const runs = batch.length ? done(revs.getAll(runRange())) : null;
	await Promise.all([...byStore].map(async ([storeName, group]) => {
		const keys = group.map(m => m.key);
		const here = names.includes(storeName);
		/* Writes whose entry carries the value are not read back. */
		const unread = here ? group.filter(m => m.text === undefined).map(m => m.key) : [];
		const [values, bases] = await Promise.all([
			unread.length ? readMany(tx.objectStore(storeName), unread) : new Map(),
			revisionsOf(revs, storeName, keys, runs),
		]);
		for (const m of group) {
			const id = JSON.stringify(encodeKey(m.key));
			if (!here || m.text === undefined) {
				m.text = undefined;
				m.exists = values.has(id);
				m.value = values.get(id);
			} else {
				m.exists = true;
			}
			const r = bases.get(id);
			m.base = r ? r.rev : null;
		}
	}));
	batch.journalKeys = journalKeys;
	return batch;
}

/* The body of a push: {mutations}, each value that is already JSON text
 * (a JsonText) spliced in as it is rather than parsed and written again. */
function pushBody(mutations) {
	const parts = mutations.map(m => {
		if (!(m.value instanceof JsonText)) return JSON.stringify(m);
		const rest = JSON.stringify({ ...m, value: undefined });
		return rest.slice(0, -1) + ',"value":' + m.value.text + '}';
	});
	return new JsonText('{"mutations":[' + parts.join(',') + ']}');
}

/* Encodes a batch: {mutations, unencodable: [results], byId: Map id ->
 * mutation}. Values without Blobs are encoded without an await each. */
export async function encodeBatch(sync, batch) {
	const mutations = [];
	const unencodable = [];
	const byId = new Map();
	for (const m of batch) {
		try {
			const blobs = [];
			const mutation = {
				id: m.id,
				db: sync.database,
				store: m.store,
				key: encodeKey(m.key),
				op: m.exists ? 'put' : 'delete',
				...(!m.exists ? {} : m.text !== undefined ? { value: new JsonText(m.text) } : { value: encodeValueSync(m.value, blobs, 0) }),
				base: m.base,
			};
			for (const { blob, holder } of blobs) holder['~b'] = bytesToBase64url(new Uint8Array(await blob.arrayBuffer()));
			mutations.push(mutation);
			byId.set(m.id, mutation);
		} catch (err) {
			unencodable.push({ id: m.id, status: 'unencodable', error: String(err.message || err) });
		}
	}
	return { mutations, unencodable, byId };
}

/* Pushes everything pushable, as a pipeline: while the server works on
 * batch k, batch k+1 is read (leaving out what is in flight) and
 * encoded, and once k is answered k+1 is sent at once while k's
 * acknowledgement is written. What it does not change: batch k+1 is
 * SENT only after k was answered (so the server sees each record's
 * writes in order); an entry is dropped only by the acknowledgement of
 * the answer that covers it; ids stay what they are, so a retried push
 * is answered as the first time; the acknowledgements commit in batch
 * order. A record in k+1 that was also in k is read before k's revision
 * is recorded, so its base is set to the revision k's answer gave. Any
 * error stops the pipeline after the acknowledgements of the batches
 * answered before it. */
export async function pushAll(sync) {
	const inFlight = new Set(); /* read for a push, not yet acknowledged */
	const answeredRevs = new Map(); /* pairId -> revision from an answer */
	let acking = Promise.resolve();
	let ackFailed = false;
	let afterJournal = null;
	const exclusion = () => {
		const markers = new Map();
		for (const b of inFlight) for (const m of b) if (m.marker !== undefined) markers.set(m.pid, m.marker);
		return { afterJournal, markers };
	};
	/* Reads and encodes the next batch; with `ahead`, leaving out what
	 * is in flight. */
	const prepare = async ahead => {
		const batch = await sync.readBatch(false, ahead ? exclusion() : null);
		if (batch.journalKeys.length) afterJournal = batch.journalKeys[batch.journalKeys.length - 1];
		inFlight.add(batch);
		return { batch, ...(await sync.encodeBatch(batch)) };
	};
	const rebase = p => {
		for (const m of p.batch) {
			if (!answeredRevs.has(m.pid)) continue;
			m.base = answeredRevs.get(m.pid);
			const mutation = p.byId.get(m.id);
			if (mutation) mutation.base = m.base;
		}
	};
	/* A read ahead stops at key sets: once everything in flight is
	 * acknowledged, they are resolved (a read that is not ahead) and
	 * pushed in the same round. */
	const pastKeySets = async p => {
		if (p.batch.length || !p.batch.stoppedAtKeySets) return p;
		await acking;
		inFlight.clear();
		afterJournal = null;
		return prepare(false);
	};
	const queueAck = (b, results) => {
		acking = acking.then(() => sync.acknowledge(b, results)).then(() => inFlight.delete(b), err => {
			ackFailed = true;
			throw err;
		});
		acking.catch(() => {});
	};
	try {
		let p = await prepare(false);
		while (p.batch.length && !ackFailed) {
			const { batch, mutations, unencodable } = p;
			if (!mutations.length) {
				queueAck(batch, unencodable);
				await acking;
				p = await pastKeySets(await prepare(true));
				continue;
			}
			const answer = sync.request('POST', 'v1/push', pushBody(mutations));
			answer.catch(() => {});
			const next = prepare(true);
			next.catch(() => {});
			let results;
			try {
				const body = await answer;
				results = Array.isArray(body?.results) ? body.results : Array.isArray(body) ? body : null;
				if (!results) throw new SyncError('server', 'push answer without results');
			} catch (err) {
				/* A body over the server's limit: halve the batch until one
				 * mutation alone is too large, which is then rejected. Other
				 * client errors for a batch: push one by one to find the
				 * culprit, and reject only it. The batch read ahead is
				 * dropped (it only read); reading starts afresh. */
				await next.catch(() => {});
				await acking;
				inFlight.clear();
				if (!(err instanceof SyncError && (err.kind === 'too-large' || err.kind === 'client'))) throw err;
				if (mutations.length > 1) {
					sync.batchSize = Math.max(1, Math.floor(mutations.length / 2));
				} else {
					await sync.acknowledge(batch, [{ id: mutations[0].id, status: 'rejected', error: err.message }]);
					sync.reportError(err);
				}
				afterJournal = null;
				p = await prepare(false);
				continue;
			}
			const byId = new Map(batch.map(m => [m.id, m]));
			for (const r of results) {
				const m = byId.get(r?.id);
				if (m && r.status === 'ok') answeredRevs.set(m.pid, r.rev);
				else if (m && r.status === 'conflict') answeredRevs.set(m.pid, r.current?.rev ?? null);
			}
			queueAck(batch, [...results, ...unencodable]);
			sync.batchSize = Math.min(sync.maxBatchSize, sync.batchSize * 2);
			p = await next;
			rebase(p);
			p = await pastKeySets(p);
		}
	} finally {
		await acking;
	}
}

/* Settles a pushed batch in one transaction: revisions recorded, the
 * journal records it covered deleted, outbox markers deleted when they
 * still hold the id that was read, rejected writes kept as rejected
 * markers, conflicts resolved. A write made after the batch was read is
 * in a newer journal record and goes in the next batch; an answer the
 * server did not give leaves its write pending. */
export async function acknowledge(sync, batch, results) {
	const byId = new Map(batch.map(m => [m.id, m]));
	const acks = [];
	const conflicts = [];
	const answered = new Set();
	for (const r of results) {
		const m = byId.get(r?.id);
		if (!m) continue;
		answered.add(m);
		if (r.status === 'ok') acks.push({ m, rev: r.rev, seq: r.seq });
		else if (r.status === 'conflict') conflicts.push({ m, current: r.current || {} });
		else acks.push({ m, rejected: r.error || r.detail || r.status || 'rejected by the server' });
	}
	/* The local value of a write whose entry carried it, for the hook
	 * and the event. */
	for (const c of conflicts) if (c.m.text !== undefined && c.m.value === undefined) c.m.value = decodeValue(JSON.parse(c.m.text));
	/* The hook runs outside any transaction: it may await. */
	for (const c of conflicts) c.resolution = await resolveConflict(sync, c);

	const db = await sync.connection();
	const names = sync.storeNames(db);
	sync.checkLead();
	const tx = rawTransaction(db, [JOURNAL, OUTBOX, REVS, META, ...names], 'readwrite', RELAXED);
	silentTransactions.add(tx);
	const end = finished(tx);
	end.catch(() => {});
	const outbox = native.txObjectStore.call(tx, OUTBOX);
	const journal = native.txObjectStore.call(tx, JOURNAL);
	const revs = native.txObjectStore.call(tx, REVS);
	const meta = native.txObjectStore.call(tx, META);
	const last = batch.journalKeys.length ? batch.journalKeys[batch.journalKeys.length - 1] : null;
	/* Keys written again since the batch was read matter only for the
	 * rare outcomes (rejected, conflict, unanswered): read the newer
	 * journal records only then, since while an app writes fast they
	 * can be many. Markers are read as they are now. */
	const rare = acks.some(a => a.rejected) || conflicts.length > 0 || answered.size < batch.length;
	const [newer, markersNow, runKeys, mark] = await Promise.all([
		!rare ? [] : last === null ? done(journal.getAll()) : done(journal.getAll(IDBKeyRange.lowerBound(last, true))),
		Promise.all(batch.map(m => (m.marker !== undefined ? done(outbox.get([m.store, m.key])) : undefined))),
		done(revs.getAllKeys(runRange())),
		seqMark(revs, meta),
	]);
	/* Too many runs would make every lookup read them all: the oldest
	 * are folded here, in this transaction, one for the one added, so
	 * a long stream of batches costs per batch what it did before runs
	 * (a put per record), and a burst up to the limit costs nothing
	 * of it until the sync is idle. */
	if (runKeys.length >= RUN_FOLD_LIMIT) await foldRuns(tx, runKeys.length - RUN_FOLD_LIMIT + 1);
	/* A newer clear() or range delete may cover any key of its store. */
	const pids = new Set();
	const sweptStores = new Set();
	for (const entries of newer)
		for (const e of entries) {
			if (!isKeySet(e)) pids.add(pairId(e[0], e[1]));
			else if (e.op !== 'generated') sweptStores.add(e.store);
		}
	const rewritten = { has: pid => pids.has(pid) || sweptStores.has(pid.slice(0, pid.indexOf('\u0000'))) };
	const markerNow = new Map(batch.map((m, i) => [m, markersNow[i]]));
	/* Settles m's pending write: the journal record goes as a whole
	 * below; an outbox marker only while it is the one that was read. */
	const settle = m => {
		const now = markerNow.get(m);
		if (now && now.id === m.marker) native.delete.call(outbox, [m.store, m.key]);
	};
	const synced = [];
	const seqs = [];
	const runs = new Map(); /* store -> run record of the revisions given */
	const revisionSeqs = []; /* the seqs of every revision recorded here, for the seq mark */
	for (const a of acks) {
		const k = [a.m.store, a.m.key];
		if (a.rejected) {
			settle(a.m);
			if (!rewritten.has(a.m.pid)) native.put.call(outbox, { id: a.m.id, rejected: String(a.rejected) }, k);
			continue;
		}
		addToRun(runs, a.m.store, a.m.key, { rev: a.rev, seq: a.seq, deleted: !a.m.exists });
		revisionSeqs.push(a.seq);
		if (typeof a.seq === 'number') seqs.push(a.seq);
		settle(a.m);
		if (!rewritten.has(a.m.pid)) synced.push(a.m);
	}
	if (writeRuns(revs, runKeys, runs)) sync.runsWritten = true;
	/* Unanswered writes stay pending: as outbox markers, since their
	 * journal records go. */
	for (const m of batch)
		if (!answered.has(m) && m.from === 'journal' && !rewritten.has(m.pid)) native.put.call(outbox, { id: newMutationId() }, [m.store, m.key]);
	for (const key of batch.journalKeys) native.delete.call(journal, key);
	const resolved = [];
	for (const c of conflicts) {
		const k = [c.m.store, c.m.key];
		const cur = c.current;
		native.put.call(revs, { rev: cur.rev ?? null, seq: cur.seq ?? null, deleted: !!cur.deleted }, k);
		revisionSeqs.push(cur.seq ?? null);
		settle(c.m);
		if (rewritten.has(c.m.pid)) continue; /* written again meanwhile: that write goes next, on top of cur.rev */
		const store = names.includes(c.m.store) ? tx.objectStore(c.m.store) : null;
		try {
			if (c.resolution.use === 'remote') {
				if (store) {
					if (cur.deleted) native.delete.call(store, c.m.key);
					else if (store.keyPath === null) native.put.call(store, decodeValue(cur.value), c.m.key);
					else native.put.call(store, decodeValue(cur.value));
				}
			} else {
				if (store && c.resolution.use === 'value') {
					if (c.resolution.value === undefined) native.delete.call(store, c.m.key);
					else if (store.keyPath === null) native.put.call(store, c.resolution.value, c.m.key);
					else native.put.call(store, c.resolution.value);
				}
				native.put.call(outbox, { id: newMutationId() }, k);
			}
		} catch (err) {
			native.put.call(outbox, { id: c.m.id, rejected: 'conflict resolution failed: ' + err.message }, k);
		}
		resolved.push(c);
	}
	raiseSeqMark(meta, mark, revisionSeqs);
	try {
		await end;
	} catch (err) {
		throw classifyLocalError(err);
	}
	/* Only once recorded: a pull skips these as this tab's echoes. */
	for (const seq of seqs) sync.ownSeqs.add(seq);
	if (synced.length) {
		const byStore = new Map();
		for (const m of synced) {
			if (!byStore.has(m.store)) byStore.set(m.store, []);
			byStore.get(m.store).push(m.key);
		}
		for (const [store, keys] of byStore) sync.broadcast('state', { store, keys, state: 'synced' });
	}
	for (const c of resolved) {
		const detail = {
			store: c.m.store,
			key: c.m.key,
			local: { deleted: !c.m.exists, value: c.m.value },
			remote: { rev: c.current.rev, deleted: !!c.current.deleted, value: c.current.deleted ? undefined : decodeValue(c.current.value) },
			resolution: c.resolution.use,
		};
		sync.broadcast('conflict', detail);
		if (c.resolution.use === 'remote')
			sync.broadcast('change', [{ store: c.m.store, key: c.m.key, op: c.current.deleted ? 'delete' : 'put' }]);
	}
}

async function resolveConflict(sync, c) {
	if (!sync.conflictHook) return { use: 'remote' };
	const answer = await sync.conflictHook({
		store: c.m.store,
		key: c.m.key,
		local: { deleted: !c.m.exists, value: c.m.value },
		remote: { rev: c.current.rev, deleted: !!c.current.deleted, value: c.current.deleted ? undefined : decodeValue(c.current.value) },
	});
	if (answer === 'local') return { use: 'local' };
	if (answer && typeof answer === 'object' && 'value' in answer) return { use: 'value', value: answer.value };
	return { use: 'remote' };
}

