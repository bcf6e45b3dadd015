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
 * a batch, and a pulled page those of its changes, as ONE record of the
 * revisions store per store, keyed [0, n] (a number first, so no [store,
 * key] range ever holds it): {store, keys, revs, seqs, deleted}, arrays
 * in the same order. One put instead of one per record: 1,000 small puts
 * cost ~100 ms in Chromium, one put of the run ~2 ms, and that was most
 * of an acknowledgement and half of applying a pulled page. Runs are
 * folded into the per-record entries ([store, key] -> {rev, seq,
 * deleted}) when the sync is idle, one run per transaction, or (the
 * oldest) inside an acknowledgement, or a pulled page that looks
 * at revisions, once RUN_FOLD_LIMIT of them pile up, so such a lookup
 * never reads more than that many. A pulled page that needs no look (see
 * seqMark: every page of a first sync) lets them pile up until the sync
 * is idle. A record's revision is the newest (highest rev: the server
 * counts each record's revisions up, deletes included) of its per-record
 * entry and its entries in runs; so the order in which runs and
 * per-record entries were written does not matter, and a fold that meets
 * a newer per-record entry keeps it. */
export const RUN_FOLD_LIMIT = 16;
/* How long the sync must be quiet before it folds runs. */
export const FOLD_IDLE_MS = 1000;

export function runRange() {
	return IDBKeyRange.bound([0], [1], false, true);
}

/* Adds one record's revision to the run of its store in `runs` (Map
 * store -> run), for writeRuns. */
export function addToRun(runs, storeName, key, rec) {
	let run = runs.get(storeName);
	if (!run) runs.set(storeName, (run = { store: storeName, keys: [], revs: [], seqs: [], deleted: [] }));
	run.keys.push(key);
	run.revs.push(rec.rev);
	run.seqs.push(rec.seq);
	run.deleted.push(!!rec.deleted);
}

/* Writes the runs of `runs` (see addToRun) after the runs there are
 * (`runKeys`, their keys, read in the same transaction). Returns the
 * number written. */
export function writeRuns(revs, runKeys, runs) {
	let next = runKeys.length ? runKeys[runKeys.length - 1][1] + 1 : 1;
	let written = 0;
	for (const run of runs.values()) {
		if (!run.keys.length) continue;
		native.put.call(revs, run, [0, next++]);
		written += 1;
	}
	return written;
}

/* A pulled page writes the revisions of a store as a run only from this
 * many on; fewer are written per record: a few puts cost less than a run
 * that a lookup reads until it is folded, and the pulls that follow the
 * event stream bring a change or two at a time. */
export const RUN_MIN = 16;

/* The seq mark, "seqMark" in the meta store: {seq}, the highest seq of a
 * revision recorded from anything but a pull (acknowledgements,
 * conflicts). A pulled change with a seq above it cannot be older than
 * what the local copy has: the server raises a record's revision and seq
 * together, pulled pages come in seq order after the checkpoint, and
 * every revision a page recorded has a seq at or below the checkpoint. So
 * such a change needs no look at the revisions; in a first sync none
 * does. Changes applied out of that order (parked ones) are always looked
 * up. */
const SEQ_MARK = 'seqMark';

/* The seq mark (read-write `meta`, `revs`). Where there is none yet (a new
 * database, a new epoch, or revisions recorded before the mark existed)
 * it is made once from the highest seq of every revision there is: over
 * what a pull recorded too, so it may say "look" where no look was needed,
 * never the other way round. */
export async function seqMark(revs, meta) {
	const mark = await done(meta.get(SEQ_MARK));
	if (mark && typeof mark.seq === 'number') return mark.seq;
	let seq = 0;
	if ((await done(revs.getAllKeys(null, 1))).length) {
		const seqOf = s => (typeof s === 'number' ? s : Infinity);
		for (const rec of await done(revs.getAll())) {
			if (Array.isArray(rec?.seqs)) for (const s of rec.seqs) seq = Math.max(seq, seqOf(s));
			else seq = Math.max(seq, seqOf(rec?.seq));
		}
	}
	native.put.call(meta, { seq }, SEQ_MARK);
	return seq;
}

/* Raises the seq mark `mark` (as seqMark read it in this transaction) to
 * the highest of `seqs`; a seq that is not a number makes it Infinity. */
export function raiseSeqMark(meta, mark, seqs) {
	let top = mark;
	for (const s of seqs) top = Math.max(top, typeof s === 'number' ? s : Infinity);
	if (top > mark) native.put.call(meta, { seq: top }, SEQ_MARK);
}

/* Forgets the seq mark with the revisions (the server's data directory
 * is new). */
export function dropSeqMark(meta) {
	native.delete.call(meta, SEQ_MARK);
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
 * newer revision in a run left unfolded still wins at lookup. Only the
 * runs folded are read. Resolves with the number of runs folded. */
export async function foldRuns(tx, howMany = Infinity) {
	const revs = native.txObjectStore.call(tx, REVS);
	const count = Number.isFinite(howMany) ? howMany : undefined;
	const [keys, runs] = await Promise.all([done(revs.getAllKeys(runRange(), count)), done(revs.getAll(runRange(), count))]);
	if (!runs.length) return 0;
	const stores = new Set(runs.map(r => r && r.store));
	await Promise.all([...stores].map(async storeName => {
		const newest = revisionsInRuns(runs, storeName, null);
		const now = await readMany(revs, [...newest.values()].map(e => e.key), storeName);
		for (const [id, { key, rec }] of newest) if (newerRevision(now.get(id), rec) === rec) native.put.call(revs, rec, [storeName, key]);
	}));
	native.delete.call(revs, IDBKeyRange.bound([0], keys[keys.length - 1]));
	return runs.length;
}
