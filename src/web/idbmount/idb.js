/* idb.js - IndexedDB requests as promises, and reading many keys at once.
 */
import { encodeKey } from './codec.js';

export function done(req) {
	return new Promise((resolve, reject) => {
		req.addEventListener('success', () => resolve(req.result));
		req.addEventListener('error', () => reject(req.error));
	});
}

/* Resolves when `tx` commits, rejects with its error when it aborts (a
 * request's error event comes first, while tx.error is still null, so
 * only the abort is listened to). */
export function finished(tx) {
	return new Promise((resolve, reject) => {
		tx.addEventListener('complete', () => resolve());
		tx.addEventListener('abort', () => reject(tx.error || new DOMException('transaction aborted', 'AbortError')));
	});
}

export function openRequest(req) {
	return new Promise((resolve, reject) => {
		req.addEventListener('success', () => resolve(req.result));
		req.addEventListener('error', () => reject(req.error));
	});
}

/* Reads the records of `keys` (all of one store) from `source`; with
 * `prefix` (the revisions store) the source's keys are [prefix, key].
 * Returns Map canonical-key JSON -> value, with only the keys that exist.
 * Keys that lie close together (a bulk insert) are read with one range
 * read instead of one get each: far fewer requests, which is what a batch
 * of 1,000 costs. The range read stops after twice as many records as
 * keys (sparse keys: the rest are read one by one), so it needs no count
 * first; getAllRecords, where the browser has it, brings keys and values
 * in one request. */
export async function readMany(source, keys, prefix) {
	const wrap = prefix === undefined ? k => k : k => [prefix, k];
	const unwrap = prefix === undefined ? k => k : k => k[1];
	const out = new Map();
	let rest = keys;
	if (keys.length >= 16) {
		let lo = keys[0];
		let hi = keys[0];
		for (const k of keys) {
			if (indexedDB.cmp(k, lo) < 0) lo = k;
			if (indexedDB.cmp(k, hi) > 0) hi = k;
		}
		const range = IDBKeyRange.bound(wrap(lo), wrap(hi));
		const cap = 2 * keys.length;
		let ks;
		let vs;
		if (typeof source.getAllRecords === 'function') {
			const records = await done(source.getAllRecords({ query: range, count: cap }));
			ks = records.map(r => r.primaryKey);
			vs = records.map(r => r.value);
		} else {
			[ks, vs] = await Promise.all([done(source.getAllKeys(range, cap)), done(source.getAll(range, cap))]);
		}
		const wanted = new Set(keys.map(k => JSON.stringify(encodeKey(k))));
		ks.forEach((k, i) => {
			const id = JSON.stringify(encodeKey(unwrap(k)));
			if (wanted.has(id)) out.set(id, vs[i]);
		});
		if (ks.length < cap) return out;
		const last = ks[ks.length - 1];
		rest = keys.filter(k => indexedDB.cmp(wrap(k), last) > 0);
	}
	await Promise.all(rest.map(async k => {
		const v = await done(source.get(wrap(k)));
		if (v !== undefined || (await done(source.count(wrap(k)))) > 0) out.set(JSON.stringify(encodeKey(k)), v);
	}));
	return out;
}
