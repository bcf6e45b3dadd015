/* revisions.js - the revision the local copy of each record is based on:
 * per-record entries and runs in the revisions store (raw.js, REVS).
 */
import { REVS, native } from './raw.js';
import { encodeKey } from './codec.js';
import { done, readMany } from './idb.js';

/* The range of the revisions store's per-record entries of one store. */
export function rangeOfStore(storeName) {
	return IDBKeyRange.bound([storeName], [storeName + '\u0000'], false, true);
}

/* Revision runs. An acknowledgement records the revisions the server gave
 * a batch as ONE record of the revisions store, keyed [0, n] (a number
 * first, so no [store, key] range ever holds it): {store, keys, revs,
 * seqs, deleted}, arrays in the same order. One put instead of one per
 * record: 1,000 small puts cost ~100 ms in Chromium, one put of the run
 * ~2 ms, and that was most of an acknowledgement. Runs are folded into
 * the per-record entries ([store, key] -> {rev, seq, deleted}) when the
 * sync is idle, or (the oldest) inside an acknowledgement once
 * RUN_FOLD_LIMIT of them pile up, so a lookup never reads more than that
 * many. A record's revision is the newest (highest rev: the server counts
 * each record's revisions up, deletes included) of its per-record entry
 * and its entries in runs; so the order in which runs and per-record
 * entries were written does not matter, and a fold that meets a newer
 * per-record entry keeps it. */
export const RUN_FOLD_LIMIT = 16;
/* How long the sync must be quiet before it folds runs. */
export const FOLD_IDLE_MS = 1000;

export function runRange() {
	return IDBKeyRange.bound([0], [1], false, true);
}

export function newerRevision(a, b) {
	if (!a) return b;
	if (!b) return a;
	return (b.rev ?? -1) > (a.rev ?? -1) ? b : a;
}

/* The entries of `runs` for `storeName`, newest per key: Map canonical-key
 * JSON -> {key, rec: {rev, seq, deleted}}; with `wanted` (a Set of
 * canonical-key JSON) only those keys. */
export function revisionsInRuns(runs, storeName, wanted) {
	const out = new Map();
	for (const run of runs) {
		if (!run || run.store !== storeName) continue;
		run.keys.forEach((key, i) => {
			const id = JSON.stringify(encodeKey(key));
			if (wanted && !wanted.has(id)) return;
			const rec = { rev: run.revs[i], seq: run.seqs[i], deleted: !!run.deleted[i] };
			const had = out.get(id);
			if (!had || newerRevision(had.rec, rec) === rec) out.set(id, { key, rec });
		});
	}
	return out;
}

/* revisionsOf(revs, store, keys, runs?) -> Map canonical-key JSON ->
 * {rev, seq, deleted}: per-record entries and runs merged (see above).
 * `runs`: the runs (or a promise of them) when already read in this
 * transaction. */
export async function revisionsOf(revs, storeName, keys, runs = null) {
	const [records, allRuns] = await Promise.all([readMany(revs, keys, storeName), runs ?? done(revs.getAll(runRange()))]);
	if (!allRuns.length) return records;
	const inRuns = revisionsInRuns(allRuns, storeName, new Set(keys.map(k => JSON.stringify(encodeKey(k)))));
	for (const [id, { rec }] of inRuns) records.set(id, newerRevision(records.get(id), rec));
	return records;
}

/* Folds the oldest `howMany` runs (all by default) into per-record
 * entries inside `tx` (read-write, holding the revisions store): a
 * per-record entry is written only where the run's revision is newer; a
 * newer revision in a run left unfolded still wins at lookup. Resolves
 * with the number of runs folded. */
export async function foldRuns(tx, howMany = Infinity) {
	const revs = native.txObjectStore.call(tx, REVS);
	const [keys, all] = await Promise.all([done(revs.getAllKeys(runRange())), done(revs.getAll(runRange()))]);
	const runs = all.slice(0, howMany);
	if (!runs.length) return 0;
	const stores = new Set(runs.map(r => r && r.store));
	await Promise.all([...stores].map(async storeName => {
		const newest = revisionsInRuns(runs, storeName, null);
		const now = await readMany(revs, [...newest.values()].map(e => e.key), storeName);
		for (const [id, { key, rec }] of newest) if (newerRevision(now.get(id), rec) === rec) native.put.call(revs, rec, [storeName, key]);
	}));
	if (runs.length === all.length) native.delete.call(revs, runRange());
	else for (const k of keys.slice(0, runs.length)) native.delete.call(revs, k);
	return runs.length;
}
