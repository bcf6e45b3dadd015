// The pull against the real daemon (fake-indexeddb in Node, real HTTP on
// loopback, the real mount): a first sync of many pages, with the next
// page asked for while one is applied, revisions recorded as one run per
// page, and lookups only where a pulled change may be older than what
// the browser has. Records are put on the server with plain HTTP pushes,
// as another browser of the same client does.
import 'fake-indexeddb/auto';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as idbm from '../../src/web/idbmount.js';
import { Daemon } from './daemon.mjs';

/* A client of its own per test, so each pull sees only its test's
 * changes. */
let d;
const tokens = {};
before(async () => {
	d = new Daemon();
	for (const who of ['big', 'ahead', 'reload', 'legacy']) tokens[who] = d.addClient(who);
	await d.start();
});
after(async () => {
	await d.cleanup();
});

function newSync(database, extra = {}) {
	return new idbm.Sync({ database, url: d.url, token: tokens[database], lock: false, ...extra });
}

/* Another browser's push: resolves the results, each one checked. */
async function push(mutations) {
	const res = await fetch(d.url + '/v1/push', {
		method: 'POST', headers: { Authorization: 'Bearer ' + tokens[mutations[0].db], 'Content-Type': 'application/json' }, body: JSON.stringify({ mutations }),
	});
	const body = await res.text();
	assert.equal(res.status, 200, body);
	const { results } = JSON.parse(body);
	for (const r of results) assert.equal(r.status, 'ok', JSON.stringify(r));
	return results;
}

let ids = 0;
const put = (db, key, value, base = null) => ({ id: `other-${++ids}`, db, store: 'rows', key, op: 'put', value, base });
const del = (db, key, base) => ({ id: `other-${++ids}`, db, store: 'rows', key, op: 'delete', base });

/* The database and its store on the server, as another browser makes
 * them; then `n` records k0.. with values "seed <i>". */
async function seed(db, n) {
	const res = await fetch(d.url + '/v1/schema', {
		method: 'POST', headers: { Authorization: 'Bearer ' + tokens[db], 'Content-Type': 'application/json' },
		body: JSON.stringify({ db, version: 1, stores: [{ name: 'rows', keyPath: null, autoIncrement: false, indexes: [] }] }),
	});
	assert.equal(res.status, 200, await res.text());
	for (let b = 0; b < n; b += 500) await push(Array.from({ length: Math.min(500, n - b) }, (_, i) => put(db, `k${b + i}`, `seed ${b + i}`)));
}

/* The revisions store: {runs: [run], records: Map "store/key" -> rev}. */
async function revisions(database) {
	const raw = await new Promise((resolve, reject) => {
		const r = indexedDB.open(database);
		r.onsuccess = () => resolve(r.result);
		r.onerror = () => reject(r.error);
	});
	const s = idbm.internals.transaction(raw, [idbm.internals.REVS], 'readonly').objectStore(idbm.internals.REVS);
	const get = r => new Promise((resolve, reject) => {
		r.onsuccess = () => resolve(r.result);
		r.onerror = () => reject(r.error);
	});
	const [keys, values] = await Promise.all([get(s.getAllKeys()), get(s.getAll())]);
	raw.close();
	const runs = [];
	const records = new Map();
	keys.forEach((k, i) => {
		if (typeof k[0] === 'number') runs.push(values[i]);
		else records.set(`${k[0]}/${JSON.stringify(k[1])}`, values[i]);
	});
	return { runs, records };
}

test('a first sync of many pages with updates, tombstones and a conflict converges, each page applied once and in order', async () => {
	await seed('big', 2500);
	await push(Array.from({ length: 300 }, (_, i) => put('big', `k${i}`, `second ${i}`, 1)));
	await push(Array.from({ length: 200 }, (_, i) => del('big', `k${300 + i}`, 1)));
	const db = await idbm.openDatabase('big', { version: 1, stores: [{ name: 'rows' }] });
	await db.put('rows', 'local 600', 'k600'); /* the server has k600 already: a conflict */
	await db.put('rows', 'local fresh', 'fresh');
	const sync = newSync('big', { pullLimit: 400 });
	const conflicts = [];
	const applied = new Map(); /* key -> times a change of it was applied */
	const checkpoints = [];
	sync.addEventListener('conflict', ev => conflicts.push(ev.detail));
	sync.addEventListener('change', ev => {
		for (const c of ev.detail) applied.set(c.key, (applied.get(c.key) || 0) + 1);
	});
	sync.addEventListener('status', ev => checkpoints.push(ev.status.checkpoint));
	await sync.cycle();

	assert.deepEqual(conflicts.map(c => [c.key, c.local.value, c.remote.value]), [['k600', 'local 600', 'seed 600']]);
	const keys = await db.getAllKeys('rows');
	assert.equal(keys.length, 2500 - 200 + 1);
	for (let i = 0; i < 2500; i++) {
		const v = await db.get('rows', `k${i}`);
		if (i < 300) assert.equal(v, `second ${i}`);
		else if (i < 500) assert.equal(v, undefined, `k${i} was deleted on the server`);
		else assert.equal(v, `seed ${i}`);
	}
	assert.equal(await db.get('rows', 'fresh'), 'local fresh');
	assert.equal(JSON.parse(d.read('big', 'big', 'rows', 'fresh.json')), 'local fresh');
	for (const [key, times] of applied) assert.ok(times <= 2, `${key} applied ${times} times`);
	for (let i = 500; i < 2500; i++) if (i !== 600) assert.equal(applied.get(`k${i}`), 1, `k${i} applied once`);
	const seen = checkpoints.filter(c => typeof c === 'number');
	assert.deepEqual(seen, [...seen].sort((a, b) => a - b), 'the checkpoint only moves forward');
	assert.equal(await sync.outboxLength(), 0);

	/* The pull recorded its revisions as runs, none per record. */
	const revs = await revisions('big');
	assert.ok(revs.runs.length >= 6, `a run per page: ${revs.runs.length}`);
	assert.equal(await sync.recordState('rows', 'k1'), 'synced');
	assert.equal(await sync.recordState('rows', 'k301'), 'synced', 'a tombstone is a known revision');

	/* Their revisions are the bases of the next pushes: no conflict, before
	 * the fold and after it. */
	await db.put('rows', 'edited 1', 'k1');
	await db.put('rows', 'edited 2000', 'k2000');
	await db.put('rows', 'made again 301', 'k301');
	await sync.cycle();
	assert.equal(await sync.foldRevisions() > 0, true);
	await db.put('rows', 'edited 2 after the fold', 'k2');
	await db.put('rows', 'edited 2001 after the fold', 'k2001');
	await sync.cycle();
	assert.equal(conflicts.length, 1, 'no conflict but the one of k600');
	assert.equal(JSON.parse(d.read('big', 'big', 'rows', 'k1.json')), 'edited 1');
	assert.equal(JSON.parse(d.read('big', 'big', 'rows', 'k301.json')), 'made again 301');
	assert.equal(JSON.parse(d.read('big', 'big', 'rows', 'k2001.json')), 'edited 2001 after the fold');
	assert.equal((await revisions('big')).runs.length, 1, 'the acknowledgement since the fold');
	sync.stop();
	db.close();
});

test('the next page is asked for while one is applied; when it fails, the pages before it stay and the next round finishes', async () => {
	await seed('ahead', 2000);
	const db = await idbm.openDatabase('ahead', { version: 1, stores: [{ name: 'rows' }] });
	let pulls = 0;
	let pagesApplied = 0;
	const appliedWhenAsked = []; /* pages applied when each pull was asked for */
	const fetchImpl = async (url, init) => {
		if (String(url).includes('/v1/pull')) {
			pulls += 1;
			appliedWhenAsked.push(pagesApplied);
			if (pulls === 3) {
				await new Promise(r => setTimeout(r, 50));
				throw new TypeError('network down');
			}
		}
		return fetch(url, init);
	};
	const sync = newSync('ahead', { pullLimit: 500, fetch: fetchImpl });
	const applied = new Map();
	sync.addEventListener('change', ev => {
		pagesApplied += 1;
		for (const c of ev.detail) applied.set(c.key, (applied.get(c.key) || 0) + 1);
	});
	await assert.rejects(sync.cycle(), e => e.kind === 'offline');
	assert.deepEqual(appliedWhenAsked.slice(0, 3), [0, 0, 1], 'page 2 was asked for before page 1 was applied, page 3 before page 2');
	assert.equal((await db.getAllKeys('rows')).length, 1000, 'pages 1 and 2 are kept, page 3 is not');
	const checkpoint = sync.state.checkpoint;
	await sync.cycle();
	assert.ok(sync.state.checkpoint > checkpoint);
	assert.equal((await db.getAllKeys('rows')).length, 2000);
	assert.equal(applied.size, 2000);
	for (const [key, times] of applied) assert.equal(times, 1, `${key} applied once`);
	assert.equal(await db.get('rows', 'k1999'), 'seed 1999');
	sync.stop();
	db.close();
});

/* `database` gets 10 records; this browser then pushes k8 twice while its
 * pulls fail, and a reload pulls what happened since, page by page. With
 * `dropMark` the seq mark is gone before the reload, as in a database
 * whose revisions were recorded before there was one. */
async function olderChangeKeptOut(database, dropMark) {
	await seed(database, 10);
	const db = await idbm.openDatabase(database, { version: 1, stores: [{ name: 'rows' }] });
	const first = newSync(database);
	await first.cycle();
	assert.equal(await db.get('rows', 'k8'), 'seed 8');
	/* Another browser writes k5; then this one writes k8 twice, each
	 * acknowledged, while its pulls fail: its checkpoint stays before all
	 * three. */
	await push([put(database, 'k5', 'other 5', 1)]);
	const failing = newSync(database, {
		fetch: (url, init) => (String(url).includes('/v1/pull') ? Promise.reject(new TypeError('network down')) : fetch(url, init)),
	});
	await db.put('rows', 'mine 1', 'k8');
	await assert.rejects(failing.cycle(), e => e.kind === 'offline');
	await db.put('rows', 'mine 2', 'k8');
	await assert.rejects(failing.cycle(), e => e.kind === 'offline');
	assert.equal(await failing.outboxLength(), 0, 'both writes acknowledged');
	failing.stop();
	first.stop();
	if (dropMark) {
		const raw = await new Promise(resolve => {
			const r = indexedDB.open(database);
			r.onsuccess = () => resolve(r.result);
		});
		const tx = idbm.internals.transaction(raw, [idbm.internals.META], 'readwrite');
		tx.objectStore(idbm.internals.META).delete('seqMark');
		await new Promise(resolve => {
			tx.oncomplete = resolve;
		});
		raw.close();
	}
	/* A reload: a new Sync, which has no memory of its own pushes. Page
	 * by page: k5, then k8 "mine 1" (older than the local copy: kept
	 * out), then k8 "mine 2". */
	const later = newSync(database, { pullLimit: 1 });
	await later.loadMeta(); /* what a round does first: the checkpoint saved */
	const changed = [];
	later.addEventListener('change', ev => changed.push(...ev.detail.map(c => c.key)));
	assert.equal(await later.pullPage(), true);
	assert.equal(await db.get('rows', 'k5'), 'other 5');
	while (await later.pullPage()) assert.equal(await db.get('rows', 'k8'), 'mine 2', 'never the older value');
	assert.equal(await db.get('rows', 'k8'), 'mine 2');
	assert.deepEqual(changed, ['k5']);
	later.stop();
	db.close();
}

test('a pulled change older than an acknowledged push of this browser does not overwrite it, also after a reload', () => olderChangeKeptOut('reload', false));
test('so too where the seq mark is made from revisions recorded before it existed', () => olderChangeKeptOut('legacy', true));
