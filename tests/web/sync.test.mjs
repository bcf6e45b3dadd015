// The library's sync against the real daemon: fake-indexeddb in Node, real
// HTTP on loopback, the real mount. Sync rounds are driven explicitly
// (sync.cycle()) so every step is deterministic; the live loop with events
// and tabs is proven in Chromium (e2e.test.mjs).
import 'fake-indexeddb/auto';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import * as idbm from '../../src/web/idbmount.js';
import { Daemon, eventually } from './daemon.mjs';

let d;
let token;
before(async () => {
	d = new Daemon();
	token = d.addClient('alice');
	await d.start();
});
after(async () => {
	await d.cleanup();
});

function newSync(database, extra = {}) {
	return new idbm.Sync({ database, url: d.url, token, lock: false, ...extra });
}

function fileJson(...parts) {
	const text = d.read(...parts);
	assert.ok(text.endsWith('\n'), 'a record file ends with one newline');
	return JSON.parse(text);
}

/* Every key type with the file name src/DESIGN.md's table ("Key <-> file
 * name") gives it. */
const KEYS = [
	[42, '42.json'],
	[-1.5, '-1.5.json'],
	[1e21, '1e+21.json'],
	[Infinity, 'Infinity.json'],
	['alice', 'alice.json'],
	['a/b', 'a%2Fb.json'],
	['42', '%342.json'],
	['', '~s.json'],
	[new Date(Date.UTC(2026, 0, 2, 3, 4, 5)), '~d2026-01-02T03:04:05.000Z.json'],
	[new Uint8Array([0, 1, 2]).buffer, '~bAAEC.json'],
	[['u1', 7], '~a["u1",7].json'],
];

test('writes of every key type and tagged values reach the mount as exact files', async () => {
	const db = await idbm.openDatabase('keys', { version: 1, stores: [{ name: 'k' }] });
	for (const [key, file] of KEYS) await db.put('k', { file, when: new Date(0), bytes: new Uint8Array([9]) }, key);
	const sync = newSync('keys');
	assert.equal(await sync.outboxLength(), KEYS.length);
	assert.equal(await sync.recordState('k', 42), 'pending');
	await sync.cycle();
	assert.equal(await sync.outboxLength(), 0);
	assert.equal(await sync.recordState('k', 42), 'synced');
	assert.deepEqual(await sync.storeState('k'), { pending: 0, rejected: 0, synced: KEYS.length, delivered: 0 });
	const names = fs.readdirSync(d.path('alice', 'keys', 'k')).sort();
	assert.deepEqual(names, KEYS.map(k => k[1]).sort());
	for (const [, file] of KEYS)
		assert.deepEqual(fileJson('alice', 'keys', 'k', file), { file, when: { '~d': '1970-01-01T00:00:00.000Z' }, bytes: { '~b': 'CQ', type: 'Uint8Array' } });
	sync.stop();
	db.close();
});

test('a database and a store named "" sync both ways, as ~s on the mount', async () => {
	const db = await idbm.openDatabase('', { version: 1, stores: [{ name: '' }] });
	await db.put('', { n: 1 }, 'k');
	const sync = newSync('');
	await sync.cycle();
	assert.equal(await sync.outboxLength(), 0);
	assert.deepEqual(fileJson('alice', '~s', '~s', 'k.json'), { n: 1 });
	fs.writeFileSync(d.path('alice', '~s', '~s', 'j.json'), '{"n": 2}');
	await eventually(async () => {
		await sync.cycle();
		assert.deepEqual(await db.get('', 'j'), { n: 2 });
		return true;
	}, 'the edit on the mount to reach the browser');
	sync.stop();
	db.close();
});

test('an edit storm ships once; a delete reaches the mount as rm', async () => {
	const db = await idbm.openDatabase('storm', { version: 1, stores: [{ name: 'notes', keyPath: 'id' }] });
	const since = d.changes().at(-1)?.seq ?? 0;
	for (let i = 0; i < 100; i++) await db.put('notes', { id: 'hot', n: i });
	await db.put('notes', { id: 'gone', n: 0 });
	const sync = newSync('storm');
	await sync.cycle();
	assert.deepEqual(fileJson('alice', 'storm', 'notes', 'hot.json'), { id: 'hot', n: 99 });
	const mine = d.changes(since).filter(c => c.db === 'storm');
	assert.equal(mine.filter(c => c.key === 'hot').length, 1, 'one change for 100 local writes');
	await db.delete('notes', 'gone');
	await sync.cycle();
	assert.equal(d.exists('alice', 'storm', 'notes', 'gone.json'), false);
	sync.stop();
	db.close();
});

/* The app's own IndexedDB, as a plain app would use it. */
function rawOpen(name) {
	return new Promise((resolve, reject) => {
		const r = indexedDB.open(name);
		r.onsuccess = () => resolve(r.result);
		r.onerror = () => reject(r.error);
	});
}

/* One transaction of `writes(store)` on `storeName`, where a request that
 * fails is handled (preventDefault) and the transaction commits the rest. */
function rawWrites(db, storeName, writes) {
	return new Promise((resolve, reject) => {
		const tx = db.transaction([storeName], 'readwrite');
		for (const req of writes(tx.objectStore(storeName))) req.onerror = ev => ev.preventDefault();
		tx.oncomplete = resolve;
		tx.onabort = () => reject(tx.error);
	});
}

test('a put is pushed as it was put; an add or a put into a store with a unique index that fails is never pushed', async () => {
	const db = await idbm.openDatabase('travel', { version: 1, stores: [
		{ name: 'plain', keyPath: 'id' },
		{ name: 'people', keyPath: 'id', indexes: [{ name: 'byEmail', keyPath: 'email', unique: true }] },
	] });
	db.close();
	const raw = await rawOpen('travel');
	const mine = { id: 1, n: 1, when: new Date(0) };
	await rawWrites(raw, 'plain', s => {
		const put = s.put(mine);
		mine.n = 99; /* the app's object changes after put(): what was put is pushed */
		return [put];
	});
	await rawWrites(raw, 'people', s => [s.put({ id: 'ann', email: 'a@example.com' })]);
	// Both refused by IndexedDB, after the call returned: the key exists,
	// the email is taken. The app handles the errors and commits.
	await rawWrites(raw, 'plain', s => [s.add({ id: 1, n: 'added over it' }), s.put({ id: 2, n: 2 })]);
	await rawWrites(raw, 'people', s => [s.put({ id: 'bob', email: 'a@example.com' })]);
	raw.close();
	const sync = newSync('travel');
	await sync.cycle();
	assert.equal(await sync.outboxLength(), 0);
	assert.deepEqual(fileJson('alice', 'travel', 'plain', '1.json'), { id: 1, n: 1, when: { '~d': '1970-01-01T00:00:00.000Z' } });
	assert.deepEqual(fileJson('alice', 'travel', 'plain', '2.json'), { id: 2, n: 2 });
	assert.deepEqual(fileJson('alice', 'travel', 'people', 'ann.json'), { id: 'ann', email: 'a@example.com' });
	assert.equal(d.exists('alice', 'travel', 'people', 'bob.json'), false, 'the refused put is not on the server');
	sync.stop();
});

test('in an upgrade, a put refused by a unique index made after the store is never pushed', async () => {
	idbm.captureIndexedDB({ databases: ['travel-upgrade'] });
	const raw = await new Promise((resolve, reject) => {
		const r = indexedDB.open('travel-upgrade', 1);
		r.onupgradeneeded = () => {
			const people = r.result.createObjectStore('people', { keyPath: 'id' });
			people.put({ id: 'ann', email: 'a@example.com' });
			people.createIndex('byEmail', 'email', { unique: true });
			people.put({ id: 'bob', email: 'a@example.com' }).onerror = ev => ev.preventDefault();
		};
		r.onsuccess = () => resolve(r.result);
		r.onerror = () => reject(r.error);
	});
	raw.close();
	const sync = newSync('travel-upgrade');
	await sync.cycle();
	assert.deepEqual(fileJson('alice', 'travel-upgrade', 'people', 'ann.json'), { id: 'ann', email: 'a@example.com' });
	assert.equal(d.exists('alice', 'travel-upgrade', 'people', 'bob.json'), false, 'the refused put is not on the server');
	sync.stop();
});

test('changes made on the mount are pulled without being echoed back', async () => {
	const db = await idbm.openDatabase('pull', { version: 1, stores: [{ name: 'notes' }] });
	const sync = newSync('pull');
	await sync.cycle(); /* makes the database and store on the server */
	fs.writeFileSync(d.path('alice', 'pull', 'notes', 'from-shell.json'), '{"text":"hi","at":{"~d":"2026-11-23T10:00:00.000Z"}}\n');
	d.ctl('put', 'alice/pull/notes', '7', '{"n":7}');
	const seqBefore = d.changes().at(-1).seq;
	await sync.cycle();
	const v = await db.get('notes', 'from-shell');
	assert.equal(v.text, 'hi');
	assert.ok(v.at instanceof Date && v.at.toISOString() === '2026-11-23T10:00:00.000Z');
	assert.deepEqual(await db.get('notes', 7), { n: 7 });
	assert.equal(await sync.outboxLength(), 0, 'applied changes are not captured');
	assert.equal(await sync.recordState('notes', 7), 'synced');
	await sync.cycle();
	assert.equal(d.changes().at(-1).seq, seqBefore, 'nothing was pushed back');
	assert.ok(sync.state.checkpoint >= seqBefore);

	// The checkpoint is persisted: a new Sync starts where the old one stopped.
	const again = newSync('pull');
	await again.loadMeta();
	assert.equal(again.state.checkpoint, sync.state.checkpoint);
	sync.stop();
	again.stop();
	db.close();
});

test('a conflict ends as the default policy says: the server wins, the local value is reported', async () => {
	const db = await idbm.openDatabase('conflict', { version: 1, stores: [{ name: 'notes' }] });
	await db.put('notes', { v: 'first' }, 'k');
	const sync = newSync('conflict');
	await sync.cycle();
	// The mount and the page change the same record before they hear of each other.
	fs.writeFileSync(d.path('alice', 'conflict', 'notes', 'k.json'), '{"v":"mount"}\n');
	await db.put('notes', { v: 'page' }, 'k');
	const conflicts = [];
	sync.addEventListener('conflict', ev => conflicts.push(ev.detail));
	await sync.cycle();
	assert.deepEqual(await db.get('notes', 'k'), { v: 'mount' });
	assert.deepEqual(fileJson('alice', 'conflict', 'notes', 'k.json'), { v: 'mount' });
	assert.equal(conflicts.length, 1);
	assert.deepEqual(conflicts[0].local.value, { v: 'page' });
	assert.deepEqual(conflicts[0].remote.value, { v: 'mount' });
	assert.equal(conflicts[0].resolution, 'remote');
	assert.equal(await sync.outboxLength(), 0);
	sync.stop();

	// A hook can keep the local value instead.
	const keep = newSync('conflict', { conflict: () => 'local' });
	fs.writeFileSync(d.path('alice', 'conflict', 'notes', 'k.json'), '{"v":"mount again"}\n');
	await db.put('notes', { v: 'page wins' }, 'k');
	await keep.cycle();
	await keep.cycle();
	assert.deepEqual(fileJson('alice', 'conflict', 'notes', 'k.json'), { v: 'page wins' });
	assert.deepEqual(await db.get('notes', 'k'), { v: 'page wins' });
	keep.stop();
	db.close();
});

test('a wrong token is an auth error and loses nothing; a new token resumes', async () => {
	const db = await idbm.openDatabase('auth', { version: 1, stores: [{ name: 'notes' }] });
	await db.put('notes', 'kept', 'a');
	const sync = newSync('auth', { token: 'f'.repeat(64) });
	const errors = [];
	sync.addEventListener('error', ev => errors.push(ev.detail));
	await assert.rejects(sync.cycle(), e => e.kind === 'auth' && e.status === 401);
	sync.reportError(new idbm.SyncError('auth', 'x', { status: 401 }));
	assert.equal(errors[0].kind, 'auth');
	assert.equal(await sync.outboxLength(), 1);
	sync.setToken(token);
	await sync.cycle();
	assert.equal(await sync.outboxLength(), 0);
	assert.equal(JSON.parse(d.read('alice', 'auth', 'notes', 'a.json')), 'kept');
	sync.stop();
	db.close();
});

test('an unreachable server is an offline error; the outbox waits and ships later', async () => {
	const db = await idbm.openDatabase('offline', { version: 1, stores: [{ name: 'notes' }] });
	await db.put('notes', 1, 'a');
	const sync = newSync('offline', { url: 'http://127.0.0.1:9/' });
	await assert.rejects(sync.cycle(), e => e.kind === 'offline');
	assert.equal(sync.state.online, false);
	assert.equal(await sync.outboxLength(), 1);
	sync.stop();
	const good = newSync('offline');
	await good.cycle();
	assert.equal(await good.outboxLength(), 0);
	assert.equal(d.read('alice', 'offline', 'notes', 'a.json'), '1\n');
	good.stop();
	db.close();
});

test('thousands of records go in batches; a retried push is applied once', async () => {
	const db = await idbm.openDatabase('bulk', { version: 1, stores: [{ name: 'rows', keyPath: 'id' }] });
	await db.transaction(['rows'], 'readwrite', async tx => {
		for (let i = 0; i < 2500; i++) tx.store('rows').put({ id: i, pad: 'x'.repeat(300) });
	});
	const since = d.changes().at(-1).seq;
	const sync = newSync('bulk', { batchSize: 1000 });
	await sync.cycle();
	assert.equal(await sync.outboxLength(), 0);
	assert.equal(fs.readdirSync(d.path('alice', 'bulk', 'rows')).length, 2500);
	assert.equal(d.changes(since).filter(c => c.db === 'bulk').length, 2500);

	// The same mutation id twice: the second answer repeats the first.
	const m = { id: 'retry-1', db: 'bulk', store: 'rows', key: 1, op: 'put', value: { id: 1, pad: 'again' }, base: null };
	const first = await sync.request('POST', 'v1/push', { mutations: [m] });
	const second = await sync.request('POST', 'v1/push', { mutations: [m] });
	assert.deepEqual(second, first);
	sync.stop();
	db.close();
});

test('pipelined batches: a record in consecutive batches goes in order, on top of the revision the batch before got', async () => {
	const db = await idbm.openDatabase('pipe', { version: 1, stores: [{ name: 'rows' }] });
	let pulls = 0;
	const countingFetch = (url, init) => {
		if (String(url).includes('/v1/pull')) pulls++;
		return fetch(url, init);
	};
	/* batchSize 10: each transaction below is one batch, and the next one
	 * is read while the one before is still unanswered. */
	const sync = newSync('pipe', { batchSize: 10, pullLimit: 10, fetch: countingFetch });
	await sync.cycle(); /* catches up with the other tests' changes first */
	const conflicts = [];
	sync.addEventListener('conflict', ev => conflicts.push(ev.detail));
	for (let i = 0; i < 5; i++) {
		await db.transaction(['rows'], 'readwrite', tx => {
			tx.store('rows').put(i, 'hot');
			for (let j = 0; j < 9; j++) tx.store('rows').put(`${i}-${j}`, `k${i}-${j}`);
		});
	}
	const since = d.changes().at(-1)?.seq ?? 0;
	pulls = 0;
	await sync.cycle();
	assert.deepEqual(conflicts, [], 'no write conflicted with its own earlier batch');
	assert.equal(await sync.outboxLength(), 0);
	const hot = d.changes(since).filter(c => c.db === 'pipe' && c.key === 'hot');
	/* Each batch pushes what the record holds then (4); each push of "hot"
	 * was based on the revision the one before made, none conflicted. */
	assert.equal(hot.length, 5);
	assert.deepEqual(hot.map(c => c.rev), [1, 2, 3, 4, 5]);
	assert.equal(fileJson('alice', 'pipe', 'rows', 'hot.json'), 4);
	assert.equal(fs.readdirSync(d.path('alice', 'pipe', 'rows')).length, 46);
	assert.equal(await sync.recordState('rows', 'hot'), 'synced');
	/* 50 changes of this client's own pushes follow the checkpoint: one pull
	 * (nothing new) instead of 5 pages of echoes. */
	assert.equal(pulls, 1);
	assert.equal(sync.state.checkpoint, d.changes().at(-1).seq);
	sync.stop();
	db.close();
});

test('a store made on the mount reaches the browser in a version upgrade', async () => {
	const db = await idbm.openDatabase('grow', { version: 3, stores: [{ name: 'a' }] });
	const sync = newSync('grow');
	await sync.cycle();
	fs.mkdirSync(d.path('alice', 'grow', 'made-on-mount'));
	fs.writeFileSync(d.path('alice', 'grow', 'made-on-mount', 'x.json'), '{"x":1}\n');
	const schema = [];
	sync.addEventListener('schema', ev => schema.push(ev.detail));
	await sync.cycle();
	await sync.cycle(); /* the new connection sends the schema again and applies parked changes */
	assert.ok(schema.some(s => s.applied && s.applied.includes('made-on-mount')), JSON.stringify(schema));
	assert.equal(db.version, undefined, 'the library closed its connection for the upgrade');
	assert.deepEqual(await db.get('made-on-mount', 'x'), { x: 1 });
	assert.equal(db.version, 3, 'the app version is unchanged');
	sync.stop();
	db.close();
});

test('with serverStores "report" a store from the server is reported as not applied, its records wait', async () => {
	const db = await idbm.openDatabase('report', { version: 1, stores: [{ name: 'a' }] });
	const sync = newSync('report', { serverStores: 'report' });
	await sync.cycle();
	fs.mkdirSync(d.path('alice', 'report', 'extra'));
	fs.writeFileSync(d.path('alice', 'report', 'extra', 'y.json'), '2\n');
	await sync.cycle();
	assert.deepEqual(sync.state.notApplied.map(n => n.store), ['extra']);
	assert.match(sync.state.notApplied[0].reason, /report/);
	assert.equal(db.storeNames.includes('extra'), false);
	sync.stop();
	// Switching to "upgrade" creates it and applies the parked record.
	const up = newSync('report');
	await up.cycle();
	await up.cycle();
	assert.equal(await db.get('extra', 'y'), 2);
	up.stop();
	db.close();
});

test('the live loop follows /v1/events, survives a daemon restart and catches up', async () => {
	const db = await idbm.openDatabase('live', { version: 1, stores: [{ name: 'notes' }] });
	const sync = new idbm.Sync({ database: 'live', url: d.url, token, lock: false, backoff: new idbm.Backoff(50, 500) });
	const errors = [];
	sync.addEventListener('error', ev => errors.push(ev.detail));
	sync.start();
	await eventually(() => sync.state.leader && d.exists('alice', 'live', 'notes'), 'the first round');
	// A change on the mount arrives through the event stream, no polling.
	fs.writeFileSync(d.path('alice', 'live', 'notes', 'pushed-by-event.json'), '"hello"\n');
	await eventually(async () => (await db.get('notes', 'pushed-by-event')) === 'hello', 'the event-driven pull');
	// The daemon goes away: writes wait, the errors say offline.
	assert.equal(await d.stop(), 0);
	await db.put('notes', 'written while the daemon was down', 'down');
	await eventually(() => errors.some(e => e.kind === 'offline'), 'an offline error');
	assert.equal(await sync.recordState('notes', 'down'), 'pending');
	await d.start();
	await eventually(() => d.exists('alice', 'live', 'notes', 'down.json'), 'the write made while the daemon was down');
	// The event stream reconnected: a mount change still arrives by itself.
	fs.writeFileSync(d.path('alice', 'live', 'notes', 'after-restart.json'), '2\n');
	await eventually(async () => (await db.get('notes', 'after-restart')) === 2, 'a change after the restart');
	sync.stop();
	db.close();
});

/* The revisions store as it is: {runs: [[runKey, run]], records: Map
 * "store/key" -> {rev, seq, deleted}}. */
async function revisionsStore(database) {
	const raw = await new Promise((resolve, reject) => {
		const r = indexedDB.open(database);
		r.onsuccess = () => resolve(r.result);
		r.onerror = () => reject(r.error);
	});
	const tx = idbm.internals.transaction(raw, [idbm.internals.REVS], 'readonly');
	const s = tx.objectStore(idbm.internals.REVS);
	const get = r => new Promise((resolve, reject) => {
		r.onsuccess = () => resolve(r.result);
		r.onerror = () => reject(r.error);
	});
	const [keys, values] = await Promise.all([get(s.getAllKeys()), get(s.getAll())]);
	raw.close();
	const runs = [];
	const records = new Map();
	keys.forEach((k, i) => {
		if (typeof k[0] === 'number') runs.push([k, values[i]]);
		else records.set(`${k[0]}/${JSON.stringify(k[1])}`, values[i]);
	});
	return { runs, records };
}

test('an acknowledgement records its revisions as one run; lookups and the fold see the newest revision', async () => {
	const db = await idbm.openDatabase('runs', { version: 1, stores: [{ name: 'rows' }] });
	for (let b = 0; b < 30; b += 10) {
		await db.transaction(['rows'], 'readwrite', tx => {
			for (let i = b; i < b + 10; i++) tx.store('rows').put(`v${i}`, `k${i}`);
		});
	}
	const sync = newSync('runs', { batchSize: 10 });
	await sync.cycle();
	let revs = await revisionsStore('runs');
	assert.equal(revs.runs.length, 3, 'three batches, three runs');
	assert.equal(revs.records.size, 0, 'no per-record entry written by the acknowledgements');
	assert.deepEqual(revs.runs.map(([, r]) => r.keys.length), [10, 10, 10]);
	assert.equal(await sync.recordState('rows', 'k0'), 'synced');
	assert.equal((await sync.storeState('rows')).synced, 30);

	// A new local write is pushed on top of the revision in the run: no conflict.
	const conflicts = [];
	sync.addEventListener('conflict', ev => conflicts.push(ev.detail));
	await db.put('rows', 'v0 again', 'k0');
	await sync.cycle();
	assert.deepEqual(conflicts, []);
	assert.equal(fileJson('alice', 'runs', 'rows', 'k0.json'), 'v0 again');

	// A change on the mount is pulled (rev 2, newer than k1's run entry) and
	// recorded per record; the fold must keep it over the run's rev 1.
	fs.writeFileSync(d.path('alice', 'runs', 'rows', 'k1.json'), '"from the mount"\n');
	await sync.cycle();
	assert.equal(await db.get('rows', 'k1'), 'from the mount');
	assert.equal((await revisionsStore('runs')).records.get('rows/"k1"').rev, 2);

	assert.equal(await sync.foldRevisions(), 4);
	revs = await revisionsStore('runs');
	assert.equal(revs.runs.length, 0, 'the fold leaves no run');
	assert.equal(revs.records.size, 30);
	assert.equal(revs.records.get('rows/"k0"').rev, 2, 'k0: the newer of its two runs');
	assert.equal(revs.records.get('rows/"k1"').rev, 2, 'k1: the pulled revision, not the older run entry');
	assert.equal(revs.records.get('rows/"k5"').rev, 1);
	assert.equal((await sync.storeState('rows')).synced, 30);

	// After the fold the bases still agree with the server.
	await db.put('rows', 'k1 from the page', 'k1');
	await db.put('rows', 'k0 third', 'k0');
	await sync.cycle();
	assert.deepEqual(conflicts, []);
	assert.equal(fileJson('alice', 'runs', 'rows', 'k1.json'), 'k1 from the page');
	assert.equal(fileJson('alice', 'runs', 'rows', 'k0.json'), 'k0 third');
	assert.equal(await sync.outboxLength(), 0);
	sync.stop();
	db.close();
});

test('runs never pile up: past the limit an acknowledgement folds the oldest', async () => {
	const db = await idbm.openDatabase('manyruns', { version: 1, stores: [{ name: 'rows' }] });
	for (let i = 0; i < 40; i++) await db.put('rows', i, i); /* 40 transactions, 40 batches of one */
	const sync = newSync('manyruns', { batchSize: 1 });
	await sync.cycle();
	let revs = await revisionsStore('manyruns');
	assert.equal(revs.runs.length, 16, 'the limit');
	assert.deepEqual(revs.runs.map(([, r]) => r.keys[0]), Array.from({ length: 16 }, (_, i) => 24 + i), 'the newest runs are kept');
	assert.equal(revs.records.size, 24, 'the oldest were folded');
	assert.equal((await sync.storeState('rows')).synced, 40);

	// Key 0, folded at rev 1, written again: rev 2 lives in a run; the
	// next write of it must be based on rev 2, not on the folded rev 1.
	const conflicts = [];
	sync.addEventListener('conflict', ev => conflicts.push(ev.detail));
	await db.put('rows', 'second', 0);
	await sync.cycle();
	revs = await revisionsStore('manyruns');
	assert.equal(revs.records.get('rows/0').rev, 1);
	await db.put('rows', 'third', 0);
	await sync.cycle();
	assert.deepEqual(conflicts, []);
	assert.equal(fileJson('alice', 'manyruns', 'rows', '0.json'), 'third');
	assert.equal(await sync.recordState('rows', 0), 'synced');
	sync.stop();
	db.close();
});

test('a write made while its batch is on the way stays pending after that batch is acknowledged', async () => {
	const db = await idbm.openDatabase('inflight', { version: 1, stores: [{ name: 'rows' }] });
	await db.transaction(['rows'], 'readwrite', tx => {
		for (let i = 0; i < 20; i++) tx.store('rows').put(`first ${i}`, `k${i}`);
	});
	let pushes = 0;
	/* The first push carries k3 = "first 3"; before it reaches the server
	 * the app writes k3 again. The second push fails (offline): the new
	 * write must still be pending then, not taken as acknowledged. */
	const fetchImpl = async (url, init) => {
		if (String(url).includes('/v1/push')) {
			pushes += 1;
			if (pushes === 1) await db.put('rows', 'written during the push', 'k3');
			if (pushes === 2) throw new TypeError('network down');
		}
		return fetch(url, init);
	};
	const sync = newSync('inflight', { fetch: fetchImpl });
	await assert.rejects(sync.cycle(), e => e.kind === 'offline');
	assert.equal(fileJson('alice', 'inflight', 'rows', 'k3.json'), 'first 3');
	assert.equal(await sync.outboxLength(), 1);
	assert.equal(await sync.recordState('rows', 'k3'), 'pending');
	assert.equal(await sync.recordState('rows', 'k4'), 'synced');
	await sync.cycle();
	assert.equal(fileJson('alice', 'inflight', 'rows', 'k3.json'), 'written during the push');
	assert.equal(await sync.outboxLength(), 0);
	assert.equal(await sync.recordState('rows', 'k3'), 'synced');
	sync.stop();
	db.close();
});

test('a batch of keys spread thinly over a large store reads what it needs, values and bases right', async () => {
	const db = await idbm.openDatabase('sparse', { version: 1, stores: [{ name: 'rows' }] });
	await db.transaction(['rows'], 'readwrite', tx => {
		for (let i = 0; i < 200; i++) tx.store('rows').put(`first ${i}`, i);
	});
	const sync = newSync('sparse');
	await sync.cycle();
	await sync.foldRevisions(); /* the bases are per-record entries now: a dense range of 200 */
	/* Every 7th key: 29 keys over a range of 197 records, more than twice
	 * as many, so the range read stops early and the rest is read one by
	 * one. */
	await db.transaction(['rows'], 'readwrite', tx => {
		for (let i = 0; i < 200; i += 7) tx.store('rows').put(`second ${i}`, i);
	});
	const conflicts = [];
	sync.addEventListener('conflict', ev => conflicts.push(ev.detail));
	await sync.cycle();
	assert.deepEqual(conflicts, [], 'every base was found');
	for (let i = 0; i < 200; i++) assert.equal(fileJson('alice', 'sparse', 'rows', `${i}.json`), i % 7 === 0 ? `second ${i}` : `first ${i}`);
	assert.equal(await sync.outboxLength(), 0);
	sync.stop();
	db.close();
});

test('a batch over two stores records a run for each; a delete\'s revision in a run is the base of the next put', async () => {
	const db = await idbm.openDatabase('tworuns', { version: 1, stores: [{ name: 'a' }, { name: 'b' }] });
	await db.transaction(['a', 'b'], 'readwrite', tx => {
		for (let i = 0; i < 5; i++) {
			tx.store('a').put(`a${i}`, i);
			tx.store('b').put(`b${i}`, i);
		}
	});
	const sync = newSync('tworuns');
	await sync.cycle();
	let revs = await revisionsStore('tworuns');
	assert.deepEqual(revs.runs.map(([, r]) => [r.store, r.keys.length]).sort(), [['a', 5], ['b', 5]]);
	assert.equal((await sync.storeState('a')).synced, 5);
	assert.equal((await sync.storeState('b')).synced, 5);

	const conflicts = [];
	sync.addEventListener('conflict', ev => conflicts.push(ev.detail));
	await db.delete('b', 3);
	await sync.cycle();
	assert.ok(!d.exists('alice', 'tworuns', 'b', '3.json'), 'the delete reached the mount');
	revs = await revisionsStore('tworuns');
	const inRun = revs.runs.map(([, r]) => r).find(r => r.store === 'b' && r.keys.includes(3) && r.deleted[r.keys.indexOf(3)]);
	assert.ok(inRun, 'the delete\'s revision is in a run, marked deleted');
	await db.put('b', 'b3 again', 3);
	await sync.cycle();
	assert.deepEqual(conflicts, [], 'the put went on top of the delete\'s revision');
	assert.equal(fileJson('alice', 'tworuns', 'b', '3.json'), 'b3 again');
	await sync.foldRevisions();
	revs = await revisionsStore('tworuns');
	assert.equal(revs.runs.length, 0);
	assert.equal(revs.records.get('b/3').rev, 3, 'put, delete, put');
	assert.equal(revs.records.get('a/3').rev, 1);
	assert.equal((await sync.storeState('b')).synced, 5);
	sync.stop();
	db.close();
});

test('clear() and a key-range delete reach the mount as deletes, keys a generator made as puts; a change pulled after a clear is neither deleted nor pushed back', async () => {
	const db = await idbm.openDatabase('sets', { version: 1, stores: [{ name: 'notes' }, { name: 'log', autoIncrement: true }] });
	await db.transaction(['notes', 'log'], 'readwrite', async tx => {
		for (const k of 'abcdefgh') tx.store('notes').put({ k }, k);
		for (let i = 0; i < 3; i++) tx.store('log').add({ i });
	});
	const sync = newSync('sets');
	await sync.cycle();
	const names = store => fs.readdirSync(d.path('alice', 'sets', store)).sort();
	assert.deepEqual(names('notes'), [...'abcdefgh'].map(k => k + '.json'));
	assert.deepEqual(names('log'), ['1.json', '2.json', '3.json']);

	// A range delete and a generated key: noted as key sets, resolved by the sync.
	await db.delete('notes', IDBKeyRange.bound('b', 'd'));
	await db.add('log', { i: 3 });
	await db.put('notes', { k: 'c again' }, 'c'); /* written again after the delete: it stays */
	await sync.cycle();
	assert.deepEqual(names('notes'), ['a.json', 'c.json', 'e.json', 'f.json', 'g.json', 'h.json']);
	assert.deepEqual(names('log'), ['1.json', '2.json', '3.json', '4.json']);
	assert.equal(await sync.outboxLength(), 0);

	// A clear() not yet pushed, while the server gets a record of its own
	// (made on the mount): the pull brings it, and the clear does not take it
	// for one of the records it removed.
	await db.transaction(['notes'], 'readwrite', async tx => {
		await tx.store('notes').clear();
		await tx.store('notes').put({ k: 'z' }, 'z');
	});
	fs.writeFileSync(d.path('alice', 'sets', 'notes', 'from-mount.json'), '{"k":"made on the mount"}\n');
	while (await sync.pullPage()) { /* the pull first, before the push */ }
	assert.deepEqual(await db.get('notes', 'from-mount'), { k: 'made on the mount' });
	await sync.cycle();
	assert.deepEqual(names('notes'), ['from-mount.json', 'z.json']);
	assert.deepEqual(await db.getAllKeys('notes'), ['from-mount', 'z']);
	assert.equal(d.changes().filter(c => c.db === 'sets' && c.key === 'from-mount').length, 1, 'the pulled record is not pushed back');
	sync.stop();
	db.close();
});

test('excluded stores are neither captured nor synced, and nothing the server has for them comes back', async () => {
	idbm.captureIndexedDB({ databases: ['with-helper'], excludeStores: ['helper'] });
	const db = await new Promise((resolve, reject) => {
		const r = indexedDB.open('with-helper', 1);
		r.onupgradeneeded = () => {
			r.result.createObjectStore('data');
			r.result.createObjectStore('helper');
		};
		r.onsuccess = () => resolve(r.result);
		r.onerror = () => reject(r.error);
	});
	const write = (stores, fn) => new Promise((resolve, reject) => {
		const tx = db.transaction(stores, 'readwrite');
		fn(tx);
		tx.oncomplete = resolve;
		tx.onabort = () => reject(tx.error);
	});
	await write(['helper'], tx => tx.objectStore('helper').put('probe', 'k'));
	await write(['data', 'helper'], tx => {
		tx.objectStore('data').put('kept', 'x');
		tx.objectStore('helper').put('probe 2', 'k2');
	});
	const sync = newSync('with-helper');
	assert.equal(await sync.outboxLength(), 1, 'only the write to "data" is pending');
	await sync.cycle();
	assert.equal(d.read('alice', 'with-helper', 'data', 'x.json'), '"kept"\n');
	assert.equal(d.exists('alice', 'with-helper', 'helper'), false, 'no directory for the excluded store');
	// A store of that name made on the server side stays there alone.
	fs.mkdirSync(d.path('alice', 'with-helper', 'helper'));
	fs.writeFileSync(d.path('alice', 'with-helper', 'helper', 'k.json'), '"from the mount"\n');
	await sync.cycle();
	await sync.cycle();
	const tx = db.transaction(['helper']);
	const value = await new Promise(resolve => (tx.objectStore('helper').get('k').onsuccess = ev => resolve(ev.target.result)));
	assert.equal(value, 'probe', 'the server\'s record of an excluded store is not applied');
	assert.deepEqual(sync.state.notApplied, []);
	sync.stop();
	db.close();
});

/* The earliest moments at which a sync failing from time 0 may try again
 * with `backoff`'s settings: each step waits at least half of it. */
function attemptsAllowed(ms, baseMs, capMs) {
	let n = 2; /* the first round and the event stream can both find it down first */
	for (let step = baseMs, at = baseMs / 2; at <= ms; step = Math.min(capMs, step * 2), at += Math.min(capMs, step) / 2) n += 1;
	return n;
}

test('while the server is unreachable, writes do not shorten the backoff; the next Sync waits out the same step', async () => {
	const db = await idbm.openDatabase('hammer', { version: 1, stores: [{ name: 'notes' }] });
	await db.put('notes', 0, 'first');
	const attempts = [];
	let down = true;
	const fetchImpl = (url, init) => {
		attempts.push(Date.now());
		if (down) return Promise.reject(new TypeError('connection refused'));
		return fetch(url.replace('http://unreachable.invalid/', d.url + '/'), init);
	};
	const options = { url: 'http://unreachable.invalid/', fetch: fetchImpl };
	const sync = newSync('hammer', { ...options, backoff: new idbm.Backoff(400, 1600) });
	const start = Date.now();
	sync.start();
	for (let i = 0; i < 300; i++) {
		await db.put('notes', i, 'k' + i);
		if (i % 50 === 0) await new Promise(r => setTimeout(r, 200));
	}
	await new Promise(r => setTimeout(r, Math.max(0, 3000 - (Date.now() - start))));
	const elapsed = Date.now() - start;
	assert.ok(attempts.length >= 2, 'it did try');
	assert.ok(attempts.length <= attemptsAllowed(elapsed, 400, 1600), `${attempts.length} attempts in ${elapsed} ms`);
	const retryAt = sync.state.retryAt;
	assert.ok(retryAt > Date.now() - 5000, 'the status tells when the next attempt is');
	sync.stop();

	// Another Sync of the same database (the tab that takes over, a
	// reload) does not try before the step that was saved is over.
	const seen = attempts.length;
	const next = newSync('hammer', { ...options, backoff: new idbm.Backoff(400, 1600) });
	next.start();
	await eventually(() => attempts.length > seen, 'the next attempt');
	assert.ok(attempts[seen] >= retryAt - 5, `the first attempt of the next Sync (${attempts[seen] - retryAt} ms after the step) waits for the step`);
	down = false;
	await eventually(() => d.exists('alice', 'hammer', 'notes', 'k299.json'), 'the writes once the server answers', 30000);
	await eventually(() => next.state.retryAt === null, 'the wait to end');
	next.stop();
	db.close();
});
