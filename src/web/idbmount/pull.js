/* pull.js - bringing the server's changes into the local database: pages
 * after a persisted checkpoint, applied without being captured (no echo),
 * never over a local write still pending (the push decides those); changes
 * for stores this database lacks are parked until the store exists.
 */
import {
	JOURNAL, OUTBOX, REVS, META, RELAXED, native, rawTransaction, silentTransactions, realStoreNames, isInternalStoreName, isExcluded,
} from './raw.js';
import { decodeKey, decodeValue } from './codec.js';
import { done, finished } from './idb.js';
import { RUN_FOLD_LIMIT, RUN_MIN, runRange, revisionsOf, foldRuns, addToRun, writeRuns, seqMark, dropSeqMark } from './revisions.js';
import { moveToOutbox, pairId, pendingWrites } from './outbox.js';
import { requestedStores } from './versions.js';
import { SyncError, classifyLocalError } from './failures.js';

/* The server's data directory was made anew (another epoch). */
async function forgetServer(sync, epoch) {
	const db = await sync.connection();
	const tx = rawTransaction(db, [REVS, META], 'readwrite');
	silentTransactions.add(tx);
	native.clear.call(native.txObjectStore.call(tx, REVS));
	const meta = native.txObjectStore.call(tx, META);
	native.put.call(meta, 0, 'checkpoint');
	native.put.call(meta, epoch, 'epoch');
	native.delete.call(meta, 'delivered');
	dropSeqMark(meta);
	await finished(tx);
	sync.schemaSent = false;
	sync.ownSeqs.clear(); /* seqs of the old data directory */
	sync.setState({ checkpoint: 0, delivered: null, epoch });
	sync.reportError(new SyncError('server', 'the server\'s data directory is new (epoch changed): pulling everything again'));
}
/* Where to pull from after `checkpoint`. Seqs are global and unique: when
 * the changes right after the checkpoint are this tab's own acknowledged
 * pushes, no other change lies between them, and pulling them back would
 * only skip them as echoes (10,000 pushed records would come back as 10
 * pages). The pull starts past them; the checkpoint moves past them when
 * the next page is saved. */
function pullFrom(sync, checkpoint) {
	let since = checkpoint;
	while (sync.ownSeqs.has(since + 1)) since += 1;
	return since;
}

/* Asks for the page after `since`; resolves with the server's answer. */
async function fetchPage(sync, since) {
	const answer = await sync.request('GET', `v1/pull?since=${encodeURIComponent(since)}&limit=${sync.pullLimit}`);
	if (!answer || !Array.isArray(answer.changes)) throw new SyncError('server', 'pull answer without changes');
	return answer;
}

/* Whether `answer` comes from another data directory than the pages
 * before it: its checkpoints and revisions mean nothing here. */
function otherEpoch(sync, answer) {
	return typeof answer.epoch === 'string' && !!sync.state.epoch && answer.epoch !== sync.state.epoch;
}

/* Applies the page `answer` pulled after `since`; resolves true when the
 * server has more. */
async function applyPage(sync, since, answer) {
	if (otherEpoch(sync, answer)) {
		/* Start over from a snapshot; local writes still pending are pushed
		 * as new. */
		await forgetServer(sync, answer.epoch);
		return true;
	}
	if (typeof answer.epoch === 'string' && answer.epoch !== sync.state.epoch) {
		await sync.saveMeta({ epoch: answer.epoch });
		sync.state.epoch = answer.epoch;
	}
	const mine = answer.changes.filter(c => c && c.db === sync.database);
	const delivered = typeof answer.delivered === 'number' ? answer.delivered : sync.state.delivered;
	await sync.applyChanges(mine, answer.checkpoint ?? since, delivered);
	return !!answer.more && answer.checkpoint !== since;
}

/* Pulls one page; resolves true when the server has more. */
export async function pullPage(sync) {
	const since = pullFrom(sync, sync.state.checkpoint ?? 0);
	return applyPage(sync, since, await fetchPage(sync, since));
}

/* Pulls until the server has no more (or an upgrade of ours is blocked).
 * The next page is asked for while this one is applied: where it starts
 * is this page's checkpoint, which its answer says. What that does not
 * change: pages are applied one after another, in order, each with its
 * checkpoint in its own transaction; a page asked for ahead is applied
 * only after the page before it committed, and is dropped (never
 * applied) when that page fails or brings another epoch. An error of the
 * page asked for ahead stops the pull after the page before it is
 * applied; the next round starts at the checkpoint saved. */
export async function pullAll(sync) {
	if (sync.upgradeWait) return;
	let since = pullFrom(sync, sync.state.checkpoint ?? 0);
	let page = fetchPage(sync, since);
	while (!sync.upgradeWait) {
		const answer = await page;
		let next = null;
		let ahead = null;
		if (answer.more && answer.checkpoint !== since && typeof answer.checkpoint === 'number' && !otherEpoch(sync, answer)) {
			ahead = pullFrom(sync, answer.checkpoint);
			next = fetchPage(sync, ahead);
			next.catch(() => {}); /* dropped when this page fails */
		}
		if (!(await applyPage(sync, since, answer))) return;
		if (next) {
			since = ahead;
			page = next;
		} else {
			since = pullFrom(sync, sync.state.checkpoint ?? 0);
			page = fetchPage(sync, since);
		}
	}
}

/* Applies server changes without capturing them (no echo), skipping keys
 * with a pending local write (the push settles those) and changes the
 * local copy already has; saves the checkpoint in the same transaction.
 * Changes for stores this database lacks are parked until the store
 * exists. The revisions are looked at only for changes that may be older
 * than what the local copy has (see seqMark), with one range read per
 * store; the revisions of the changes applied are recorded as one run
 * per store (see RUN_MIN). `parked`: the changes come from the parked
 * ones, older than the checkpoint, so every one is looked up. */
export async function applyChanges(sync, changes, checkpoint, delivered, parked = false) {
	const db = await sync.connection();
	/* Stores excluded from sync take nothing from the server. */
	changes = changes.filter(c => !isInternalStoreName(c.store) && !isExcluded(sync.database, c.store));
	/* Changes for stores this database lacks are parked first (with the
	 * checkpoint), then the stores are created; applyParked puts them in. */
	const existing = realStoreNames(db);
	const unknown = [...new Set(changes.map(c => c.store).filter(s => !existing.includes(s)))];
	const names = [...new Set(changes.map(c => c.store))].filter(s => existing.includes(s));
	sync.checkLead();
	/* A page with no changes (the pull after a push, whose own changes
	 * the checkpoint skipped) saves only the checkpoint: a transaction
	 * of the meta store, which the app's writes (they all hold the
	 * journal) neither wait for nor hold up. */
	const scope = changes.length ? [JOURNAL, OUTBOX, REVS, META, ...names] : [META];
	const tx = rawTransaction(db, scope, 'readwrite', RELAXED);
	silentTransactions.add(tx);
	const end = finished(tx);
	end.catch(() => {});
	const revs = changes.length ? native.txObjectStore.call(tx, REVS) : null;
	const meta = native.txObjectStore.call(tx, META);
	const pendingNow = changes.length ? pendingWrites(tx) : new Map(); /* local writes wait: the push decides */
	const marking = changes.length ? Promise.all([seqMark(revs, meta), done(revs.getAllKeys(runRange()))]) : [0, []];
	const applied = [];
	const decoded = [];
	let quota = null;
	for (const c of changes) {
		try {
			decoded.push({ c, key: decodeKey(c.key), value: c.op === 'put' ? decodeValue(c.value) : undefined });
		} catch (err) {
			sync.reportError(new SyncError('client', `server change ${c.store}/${JSON.stringify(c.key)} cannot be decoded: ${err.message}`));
		}
	}
	const pending = await pendingNow;
	/* Key sets noted before this page are resolved first, against the
	 * revisions as they are before it (see keysOfSet): a record this
	 * page brings is not taken for one the app cleared, and a key the
	 * app's generator made waits for the push like any pending write. */
	if (pending.keySetRecords?.length)
		for (const [store, key] of await moveToOutbox(tx, pending.keySetRecords, names, true))
			if (!pending.has(pairId(store, key))) pending.set(pairId(store, key), { store, key, journal: true });
	const [mark, runKeys] = await marking;
	/* Echoes of this tab's own pushes need no look at the revisions, nor
	 * do changes newer than every revision not recorded by a pull. */
	const looked = decoded.filter(d => !sync.ownSeqs.has(d.c.seq) && (parked || !(typeof d.c.seq === 'number' && d.c.seq > mark)));
	const known = new Map();
	if (looked.length) {
		/* A lookup reads every run: the oldest are folded first when too
		 * many piled up (see RUN_FOLD_LIMIT). */
		if (runKeys.length >= RUN_FOLD_LIMIT) {
			await foldRuns(tx, runKeys.length - RUN_FOLD_LIMIT + 1);
			runKeys.splice(0, runKeys.length - RUN_FOLD_LIMIT + 1);
		}
		const runs = done(revs.getAll(runRange()));
		const byStore = new Map();
		for (const d of looked) {
			if (!byStore.has(d.c.store)) byStore.set(d.c.store, []);
			byStore.get(d.c.store).push(d.key);
		}
		await Promise.all([...byStore].map(async ([storeName, keys]) => {
			for (const [id, rec] of await revisionsOf(revs, storeName, keys, runs)) known.set(storeName + '\u0000' + id, rec);
		}));
	}
	const runs = new Map(); /* store -> run of the revisions applied */
	decoded.forEach(d => {
		if (sync.ownSeqs.has(d.c.seq)) return;
		const rev = known.get(pairId(d.c.store, d.key));
		const marker = pending.get(pairId(d.c.store, d.key));
		if (!names.includes(d.c.store)) {
			native.put.call(meta, d.c, ['parked', d.c.store, d.key]);
			return;
		}
		if (marker) return; /* a local write waits: the push decides */
		if (rev && typeof rev.rev === 'number' && typeof d.c.rev === 'number' && rev.rev >= d.c.rev) return;
		const store = tx.objectStore(d.c.store);
		try {
			if (d.c.op === 'delete') native.delete.call(store, d.key);
			else if (store.keyPath === null) native.put.call(store, d.value, d.key);
			else native.put.call(store, d.value);
		} catch (err) {
			if (err && err.name === 'QuotaExceededError') {
				quota = err;
				return;
			}
			/* e.g. a value without the store's inline key: it can never be
			 * stored here; report it and go on */
			sync.reportError(new SyncError('client', `server change ${d.c.store}/${JSON.stringify(d.c.key)} does not fit this store: ${err.message}`));
			return;
		}
		addToRun(runs, d.c.store, d.key, { rev: d.c.rev, seq: d.c.seq, deleted: d.c.op === 'delete' });
		applied.push({ store: d.c.store, key: d.key, op: d.c.op, rev: d.c.rev, seq: d.c.seq });
	});
	if (quota) {
		/* Nothing of this page is kept, the checkpoint stays: the same
		 * changes are pulled again once there is room. */
		tx.abort();
		await end.catch(() => {});
		throw classifyLocalError(quota);
	}
	/* Few revisions of a store are written per record (see RUN_MIN). */
	for (const [storeName, run] of runs) {
		if (run.keys.length >= RUN_MIN) continue;
		run.keys.forEach((key, i) => native.put.call(revs, { rev: run.revs[i], seq: run.seqs[i], deleted: run.deleted[i] }, [storeName, key]));
		runs.delete(storeName);
	}
	const wroteRuns = revs ? writeRuns(revs, runKeys, runs) > 0 : false;
	native.put.call(meta, checkpoint, 'checkpoint');
	if (delivered !== null && delivered !== undefined) native.put.call(meta, delivered, 'delivered');
	try {
		await end;
	} catch (err) {
		throw classifyLocalError(err);
	}
	if (wroteRuns) sync.runsWritten = true;
	for (const seq of sync.ownSeqs) if (seq <= checkpoint) sync.ownSeqs.delete(seq);
	if (unknown.length)
		await createServerStores(sync, unknown.map(name => ({ name, keyPath: null, autoIncrement: false })), 'records arrived for a store this browser does not have');
	const deliveredChanged = delivered !== sync.state.delivered;
	sync.setState({ checkpoint, delivered });
	if (applied.length) sync.broadcast('change', applied);
	if (deliveredChanged) sync.broadcast('state', { delivered });
}

/* Creates stores that exist on the server in a version upgrade, or
 * reports them as not applied (serverStores "report", or the upgrade is
 * blocked by a connection that does not close). */
export async function createServerStores(sync, defs, why) {
	const list = requestedStores.get(sync.database) || [];
	for (const d of defs) if (!list.some(x => x.name === d.name)) list.push({ name: d.name, keyPath: d.keyPath ?? null, autoIncrement: !!d.autoIncrement, indexes: d.indexes || [] });
	requestedStores.set(sync.database, list);
	const names = defs.map(d => d.name);
	if (sync.serverStores !== 'upgrade') {
		noteNotApplied(sync, names, 'serverStores is "report": the app decides when to upgrade');
		return;
	}
	if (sync.db) {
		sync.db.close();
		sync.db = null;
	}
	const req = indexedDB.open(sync.database);
	let blockedTimer = null;
	const result = await new Promise(resolve => {
		req.addEventListener('blocked', () => {
			blockedTimer = setTimeout(() => resolve('blocked'), 5000);
		});
		req.addEventListener('success', () => resolve('ok'));
		req.addEventListener('error', () => resolve('error'));
	});
	clearTimeout(blockedTimer);
	if (result === 'ok') {
		req.result.close();
		const notApplied = sync.state.notApplied.filter(n => !names.includes(n.store));
		sync.setState({ notApplied });
		sync.emit('schema', { applied: names, reason: why });
		return;
	}
	/* The open stays queued when blocked; when it finally runs the
	 * stores appear and parked changes are applied at the next cycle. */
	if (result === 'blocked') {
		sync.upgradeWait = new Promise(resolve => {
			req.addEventListener('success', () => {
				req.result.close();
				sync.upgradeWait = null;
				sync.setState({ notApplied: sync.state.notApplied.filter(n => !names.includes(n.store)) });
				sync.emit('schema', { applied: names, reason: why });
				sync.wake();
				resolve();
			});
			req.addEventListener('error', () => {
				sync.upgradeWait = null;
				resolve();
			});
		});
	}
	noteNotApplied(sync, names, result === 'blocked'
		? 'the version upgrade is blocked: another connection to this database does not close on versionchange'
		: 'the version upgrade failed: ' + (req.error?.message || 'unknown error'));
}

function noteNotApplied(sync, names, reason) {
	const notApplied = [...sync.state.notApplied.filter(n => !names.includes(n.store)), ...names.map(store => ({ store, reason }))];
	sync.setState({ notApplied });
	sync.emit('schema', { notApplied: names, reason });
}

/* Changes parked for stores that now exist are applied. */
export async function applyParked(sync) {
	const db = await sync.connection();
	const tx = rawTransaction(db, [META], 'readonly');
	const meta = native.txObjectStore.call(tx, META);
	const range = IDBKeyRange.bound(['parked'], ['parked\u0000'], false, true);
	const parked = await done(meta.getAll(range));
	const existing = realStoreNames(db);
	const ready = parked.filter(c => existing.includes(c.store));
	if (!ready.length) return;
	await sync.applyChanges(ready, sync.state.checkpoint, sync.state.delivered, true);
	const tx2 = rawTransaction(db, [META], 'readwrite');
	silentTransactions.add(tx2);
	for (const c of ready) native.delete.call(native.txObjectStore.call(tx2, META), ['parked', c.store, decodeKey(c.key)]);
	await finished(tx2);
}
