/* outbox.js - what is waiting to be pushed: journal records (journal.js)
 * and outbox markers.
 *
 * The sync pushes straight from journal records (each write's mutation id
 * is "<install id>.<journal key>.<index>", the same on every retry; a key
 * written twice in a batch goes once). When the journal holds an edit
 * storm or key sets it is first compacted into the outbox, which holds ONE
 * marker per key ([store, key] -> {id}), so the storm ships once; rejected
 * writes and conflicts to push again live there too.
 */
import { JOURNAL, OUTBOX, REVS, META, native } from './raw.js';
import { bytesToBase64url, encodeKey } from './codec.js';
import { done } from './idb.js';
import { rangeOfStore, runRange, newerRevision, revisionsInRuns, revisionsOf } from './revisions.js';

let mutationCounter = 0;
const sessionId = (() => {
	const bytes = new Uint8Array(9);
	crypto.getRandomValues(bytes);
	return bytesToBase64url(bytes);
})();

/* A mutation id is made when the write is captured and stays with the
 * marker until it is acknowledged, so a retried push is applied once. */
export function newMutationId() {
	mutationCounter += 1;
	return sessionId + '-' + mutationCounter.toString(36);
}

/* A journal entry that is not a [store, key] pair: a key set, {store, op},
 * noted where the keys a write touches are not known while it is made
 * (clear(), a key-range delete, a key the store's generator makes). */
export function isKeySet(entry) {
	return !Array.isArray(entry);
}

/* The range of the revisions store's per-record entries ([store, key])
 * that a clear or range key set covers. */
function revisionRangeOf(set) {
	if (set.op === 'clear') return rangeOfStore(set.store);
	const lower = set.lower === undefined ? [set.store] : [set.store, set.lower];
	const upper = set.upper === undefined ? [set.store + '\u0000'] : [set.store, set.upper];
	return IDBKeyRange.bound(lower, upper, set.lower !== undefined && !!set.lowerOpen, set.upper === undefined || !!set.upperOpen);
}

function inKeySetRange(set, key) {
	if (set.op === 'clear') return true;
	if (set.lower !== undefined) {
		const c = indexedDB.cmp(key, set.lower);
		if (c < 0 || (c === 0 && set.lowerOpen)) return false;
	}
	if (set.upper !== undefined) {
		const c = indexedDB.cmp(key, set.upper);
		if (c > 0 || (c === 0 && set.upperOpen)) return false;
	}
	return true;
}

/* Largest key a key generator makes (2^53). */
const GENERATOR_MAX = 9007199254740992;

/* The keys key set `set` stands for, read inside `tx` (read-write over
 * REVS, META and, for "generated", the set's store):
 *   clear, range  every key (in the range) the server is known to hold a
 *                 live revision of: the revisions store's per-record
 *                 entries and runs. Keys written here and not pushed yet
 *                 are pending on their own. Resolved before any pulled
 *                 change is applied after the set was noted (see
 *                 applyChanges), so no record the server made later is
 *                 taken for one the app deleted.
 *   generated     the store's number keys above the highest one a
 *                 generated set of the store was resolved to before
 *                 (meta ["generated", store]) that have no known
 *                 revision: the keys its generator made (a key the server
 *                 sent has a revision; one the app wrote itself is also a
 *                 pair of its own).
 * `runs`: the revision runs, read once per transaction. */
async function keysOfSet(tx, set, runs) {
	const revs = native.txObjectStore.call(tx, REVS);
	if (set.op === 'generated') {
		const meta = native.txObjectStore.call(tx, META);
		const mark = ['generated', set.store];
		const after = await done(meta.get(mark));
		const range = IDBKeyRange.bound(after ?? -Infinity, GENERATOR_MAX, after !== undefined, false);
		const keys = await done(native.txObjectStore.call(tx, set.store).getAllKeys(range));
		if (!keys.length) return [];
		native.put.call(meta, keys[keys.length - 1], mark);
		const known = await revisionsOf(revs, set.store, keys, runs);
		return keys.filter(k => !known.has(JSON.stringify(encodeKey(k))));
	}
	const range = revisionRangeOf(set);
	const [keys, values] = await Promise.all([done(revs.getAllKeys(range)), done(revs.getAll(range))]);
	const newest = new Map(keys.map((k, i) => [JSON.stringify(encodeKey(k[1])), { key: k[1], rec: values[i] }]));
	for (const [id, { key, rec }] of revisionsInRuns(runs, set.store, null)) {
		if (!inKeySetRange(set, key)) continue;
		const had = newest.get(id);
		newest.set(id, { key, rec: had ? newerRevision(had.rec, rec) : rec });
	}
	return [...newest.values()].filter(e => e.rec && !e.rec.deleted).map(e => e.key);
}

/* Moves journal records into the outbox (one marker per key, with a new
 * mutation id) inside `tx` (read-write over JOURNAL, OUTBOX, REVS, META
 * and the app stores `stores`), key sets resolved (keysOfSet). A record
 * with a generated set of a store outside `stores` stays where it is when
 * `partial`, else that set is dropped (the store no longer exists).
 * `records`: [[journal key, entries]]. Resolves with the pairs moved. */
export async function moveToOutbox(tx, records, stores, partial = false) {
	const journal = native.txObjectStore.call(tx, JOURNAL);
	const outbox = native.txObjectStore.call(tx, OUTBOX);
	const runs = records.some(([, entries]) => entries.some(isKeySet)) ? await done(native.txObjectStore.call(tx, REVS).getAll(runRange())) : [];
	const moved = [];
	for (const [journalKey, entries] of records) {
		const away = entries.some(e => isKeySet(e) && e.op === 'generated' && !stores.includes(e.store));
		if (away && partial) continue;
		for (const entry of entries) {
			if (!isKeySet(entry)) moved.push([entry[0], entry[1]]); /* a marker carries no value */
			else if (entry.op !== 'generated' || stores.includes(entry.store))
				for (const key of await keysOfSet(tx, entry, runs)) moved.push([entry.store, key]);
		}
		native.delete.call(journal, journalKey);
	}
	for (const pair of moved) native.put.call(outbox, { id: newMutationId() }, pair);
	return moved;
}

/* Moves the whole journal into the outbox inside `tx` (see moveToOutbox).
 * This is where an edit storm collapses. Resolves with the number of
 * journal records moved. */
export async function compactJournal(tx, stores) {
	const journal = native.txObjectStore.call(tx, JOURNAL);
	const [keys, records] = await Promise.all([done(journal.getAllKeys()), done(journal.getAll())]);
	await moveToOutbox(tx, keys.map((k, i) => [k, records[i]]), stores);
	return keys.length;
}

/* A string that is equal for equal [store, key] pairs (Map keys). */
export function pairId(storeName, key) {
	return storeName + '\u0000' + JSON.stringify(encodeKey(key));
}

/* What is pending in `tx` (holding JOURNAL and OUTBOX): Map pairId ->
 * {store, key, marker?, journal?: true}; a key set not resolved yet counts
 * as one entry {store, keySet, journal: true} of its own, and the records
 * holding one are listed in the map's `keySetRecords` ([[journal key,
 * entries]]). */
export async function pendingWrites(tx) {
	const journal = native.txObjectStore.call(tx, JOURNAL);
	const outbox = native.txObjectStore.call(tx, OUTBOX);
	const [jKeys, records, mKeys, mVals] = await Promise.all([done(journal.getAllKeys()), done(journal.getAll()),
		done(outbox.getAllKeys()), done(outbox.getAll())]);
	const out = new Map();
	out.keySetRecords = [];
	mKeys.forEach((k, i) => out.set(pairId(k[0], k[1]), { store: k[0], key: k[1], marker: mVals[i] }));
	records.forEach((entries, i) => {
		let sets = false;
		entries.forEach((entry, j) => {
			if (isKeySet(entry)) {
				sets = true;
				out.set(`\u0001${jKeys[i]}.${j}`, { store: entry.store, keySet: entry, journal: true });
				return;
			}
			const [store, key] = entry;
			const id = pairId(store, key);
			const e = out.get(id) || { store, key };
			e.journal = true;
			out.set(id, e);
		});
		if (sets) out.keySetRecords.push([jKeys[i], entries]);
	});
	return out;
}
