// The library and drop-in capture on fake-indexeddb: no server involved.
// Each test uses its own database name, so they do not see each other.
import 'fake-indexeddb/auto';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as idbm from '../../src/web/idbmount.js';
import { encodeValueText, encodeValueSync } from '../../src/web/idbmount/codec.js';

const { OUTBOX, REVS, META } = idbm.internals;

function req(r) {
	return new Promise((resolve, reject) => {
		r.onsuccess = () => resolve(r.result);
		r.onerror = () => reject(r.error);
	});
}

function txDone(tx) {
	return new Promise((resolve, reject) => {
		tx.oncomplete = () => resolve();
		tx.onerror = () => reject(tx.error);
		tx.onabort = () => reject(tx.error || new Error('aborted'));
	});
}

/* The outbox of `name`: the journal compacted into one marker per key, as
 * the sync does before it pushes (no server is involved). */
async function compacted(name) {
	const sync = new idbm.Sync({ database: name, url: 'http://127.0.0.1:9/', token: 'unused', lock: false });
	await sync.compact(true);
	return sync;
}

async function outboxKeys(name) {
	(await compacted(name)).stop();
	const db = await req(indexedDB.open(name));
	const tx = idbm.internals.transaction(db, [OUTBOX], 'readonly');
	const keys = await req(tx.objectStore(OUTBOX).getAllKeys());
	db.close();
	return keys;
}

async function outboxEntries(name) {
	(await compacted(name)).stop();
	const db = await req(indexedDB.open(name));
	const tx = idbm.internals.transaction(db, [OUTBOX], 'readonly');
	const [keys, vals] = await Promise.all([req(tx.objectStore(OUTBOX).getAllKeys()), req(tx.objectStore(OUTBOX).getAll())]);
	db.close();
	return keys.map((k, i) => ({ key: k, ...vals[i] }));
}

const schema = {
	version: 1,
	stores: [
		{ name: 'notes', keyPath: 'id' },
		{ name: 'blobs' },
		{ name: 'events', keyPath: 'n', autoIncrement: true, indexes: [{ name: 'byDay', keyPath: 'day' }] },
	],
};

test('openDatabase creates the schema and hides the internal stores', async () => {
	const db = await idbm.openDatabase('lib-schema', schema);
	assert.deepEqual(db.storeNames.sort(), ['blobs', 'events', 'notes']);
	assert.equal(db.version, 1);
	const raw = await req(indexedDB.open('lib-schema'));
	assert.equal(raw.version, 1, 'the app sees its own version');
	assert.equal(raw.objectStoreNames.contains(OUTBOX), false);
	raw.close();
	db.close();
});

test('put, add, get, getAll, count, each, delete, clear and multi-store transactions', async () => {
	const db = await idbm.openDatabase('lib-api', schema);
	await db.put('notes', { id: 'a', text: 'one' });
	await db.put('notes', { id: 'b', text: 'two' });
	await assert.rejects(db.add('notes', { id: 'a', text: 'dup' }), e => e.name === 'ConstraintError');
	await db.put('blobs', 'out-of-line', 7);
	assert.deepEqual(await db.get('notes', 'a'), { id: 'a', text: 'one' });
	assert.equal((await db.getAll('notes')).length, 2);
	assert.equal(await db.count('notes'), 2);
	const n1 = await db.add('events', { day: 'mon' });
	const n2 = await db.add('events', { day: 'tue' });
	assert.deepEqual([n1, n2], [1, 2]);
	const seen = [];
	await db.each('notes', {}, c => {
		seen.push(c.key);
	});
	assert.deepEqual(seen, ['a', 'b']);
	await db.transaction(['notes', 'blobs'], 'readwrite', async tx => {
		await tx.store('notes').put({ id: 'c', text: 'three' });
		await tx.store('blobs').delete(7);
		await tx.store('notes').each({}, c => {
			if (c.key === 'b') c.update({ ...c.value, text: 'TWO' });
		});
	});
	assert.equal((await db.get('notes', 'b')).text, 'TWO');
	assert.equal(await db.get('blobs', 7), undefined);
	assert.deepEqual(await db.transaction('events', tx => tx.store('events').index('byDay').getAllKeys('tue')), [2]);
	await db.clear('notes');
	assert.equal(await db.count('notes'), 0);
	const keys = (await outboxKeys('lib-api')).map(k => JSON.stringify(k)).sort();
	assert.deepEqual(keys, ['["blobs",7]', '["events",1]', '["events",2]', '["notes","a"]', '["notes","b"]', '["notes","c"]']);
	db.close();
});

test('a write and its outbox marker commit or abort together', async () => {
	const db = await idbm.openDatabase('lib-atomic', schema);
	await assert.rejects(db.transaction(['notes'], 'readwrite', async tx => {
		await tx.store('notes').put({ id: 'x', text: 'never' });
		throw new Error('app changed its mind');
	}), /changed its mind/);
	assert.equal(await db.get('notes', 'x'), undefined);
	assert.deepEqual(await outboxKeys('lib-atomic'), []);

	// A failing add (ConstraintError) aborts the whole transaction: the earlier
	// put in it is gone, and so is its marker.
	await db.put('notes', { id: 'y', text: 'kept' });
	const before = await outboxEntries('lib-atomic');
	await assert.rejects(db.transaction(['notes'], 'readwrite', async tx => {
		await tx.store('notes').put({ id: 'z', text: 'rolled back' });
		await tx.store('notes').add({ id: 'y', text: 'dup' });
	}));
	assert.equal(await db.get('notes', 'z'), undefined);
	assert.deepEqual(await outboxEntries('lib-atomic'), before);
	db.close();
});

test('the outbox holds one entry per key however often it is written', async () => {
	const db = await idbm.openDatabase('lib-collapse', schema);
	for (let i = 0; i < 50; i++) await db.put('notes', { id: 'hot', n: i });
	await db.transaction(['notes'], 'readwrite', async tx => {
		for (let i = 0; i < 50; i++) tx.store('notes').put({ id: 'hot', n: 100 + i });
	});
	await db.delete('notes', 'hot');
	await db.put('notes', { id: 'hot', n: 'last' });
	const entries = await outboxEntries('lib-collapse');
	assert.equal(entries.length, 1);
	assert.deepEqual(entries[0].key, ['notes', 'hot']);
	assert.equal(typeof entries[0].id, 'string');
	db.close();
});

test('a transaction of many writes appends one journal record, atomically with them', async () => {
	const db = await idbm.openDatabase('lib-journal', schema);
	await db.transaction(['notes', 'blobs'], 'readwrite', async tx => {
		for (let i = 0; i < 100; i++) tx.store('notes').put({ id: 'n' + i });
		tx.store('blobs').put('b', 1);
		await tx.store('notes').delete(IDBKeyRange.bound('n10', 'n19'));
	});
	const raw = await req(indexedDB.open('lib-journal'));
	const tx = idbm.internals.transaction(raw, [idbm.internals.JOURNAL], 'readonly');
	const records = await req(tx.objectStore(idbm.internals.JOURNAL).getAll());
	raw.close();
	assert.equal(records.length, 1);
	assert.equal(records[0].length, 100 + 1 + 1);
	// A key-range delete is noted as the range: its keys are found by the sync.
	assert.deepEqual(records[0].at(-1), { store: 'notes', op: 'range', lower: 'n10', upper: 'n19', lowerOpen: false, upperOpen: false });
	assert.equal((await outboxKeys('lib-journal')).length, 101);
	db.close();
});

async function journalRecords(name) {
	const raw = await req(indexedDB.open(name));
	const tx = idbm.internals.transaction(raw, [idbm.internals.JOURNAL], 'readonly');
	const records = await req(tx.objectStore(idbm.internals.JOURNAL).getAll());
	raw.close();
	return records;
}

/* (That such a loop writes ONE journal record, at its end, is checked in
 * Chromium: probe.js. fake-indexeddb calls a request's listeners before its
 * onsuccess handler, so there the record is written step by step.) */
test('a cursor loop\'s updates and deletes are all captured, in the loop\'s transaction', async () => {
	const db = await idbm.openDatabase('lib-cursor', schema);
	await db.transaction(['notes'], 'readwrite', async tx => {
		for (let i = 0; i < 20; i++) tx.store('notes').put({ id: 'n' + String(i).padStart(2, '0'), n: i });
	});
	assert.equal((await journalRecords('lib-cursor')).length, 1);
	await db.transaction(['notes'], 'readwrite', tx => tx.store('notes').each({}, c => {
		if (c.value.n % 2) c.update({ ...c.value, odd: true });
		else if (c.value.n % 4 === 0) c.delete();
	}));
	const written = (await journalRecords('lib-cursor')).slice(1).flat().map(p => p[1]);
	assert.deepEqual(written, ['n00', 'n01', 'n03', 'n04', 'n05', 'n07', 'n08', 'n09', 'n11', 'n12', 'n13', 'n15', 'n16', 'n17', 'n19']);
	assert.equal((await outboxKeys('lib-cursor')).length, 20);
	db.close();
});

test('generated keys are captured, also with an explicit commit()', async () => {
	const db = await idbm.openDatabase('lib-autoinc', schema);
	const raw = await req(indexedDB.open('lib-autoinc'));
	const tx = raw.transaction(['events'], 'readwrite');
	tx.objectStore('events').add({ day: 'wed' });
	tx.objectStore('events').add({ day: 'thu' });
	if (typeof tx.commit === 'function') tx.commit();
	await txDone(tx);
	raw.close();
	assert.deepEqual((await outboxKeys('lib-autoinc')).map(k => k[1]), [1, 2]);
	db.close();
});

test('every key type is a valid outbox key and round-trips through the tagged form', async () => {
	const db = await idbm.openDatabase('lib-keys', schema);
	const keys = [0, -1.5, 1e21, Infinity, -Infinity, '', 'a/b', '42', '~x', new Date(Date.UTC(2026, 0, 2, 3, 4, 5)),
		new Uint8Array([0, 1, 2]).buffer, ['u1', 7, [new Date(0)]]];
	for (const k of keys) await db.put('blobs', { k: String(k) }, k);
	const stored = await db.getAllKeys('blobs');
	assert.equal(stored.length, keys.length);
	const marked = (await outboxKeys('lib-keys')).map(k => k[1]);
	assert.equal(marked.length, keys.length);
	for (const k of stored) {
		const back = idbm.decodeKey(JSON.parse(JSON.stringify(idbm.encodeKey(k))));
		assert.deepEqual(idbm.encodeKey(back), idbm.encodeKey(k));
	}
	assert.deepEqual(idbm.encodeKey(-0), 0);
	assert.deepEqual(idbm.encodeKey(Infinity), { '~n': 'Infinity' });
	assert.deepEqual(idbm.encodeKey(new Date(Date.UTC(2026, 0, 2, 3, 4, 5))), { '~d': '2026-01-02T03:04:05.000Z' });
	assert.deepEqual(idbm.encodeKey(new Uint8Array([0, 1, 2])), { '~b': 'AAEC' });
	assert.deepEqual(idbm.encodeKey(['u1', 7]), ['u1', 7]);
	assert.throws(() => idbm.encodeKey(NaN));
	assert.throws(() => idbm.decodeKey({ '~d': 'not a date' }));
	assert.throws(() => idbm.decodeKey({ '~b': 'not base64!' }));
	db.close();
});

test('values JSON cannot hold survive the tagged round trip', async () => {
	const value = {
		when: new Date(Date.UTC(2026, 10, 23, 10, 0, 0, 123)),
		raw: new Uint8Array([255, 0, 7]).buffer,
		u8: new Uint8Array([1, 2, 3]),
		f64: new Float64Array([1.5, -0]),
		blob: new Blob(['hello'], { type: 'text/plain' }),
		nums: [NaN, Infinity, -Infinity, -0, 1],
		undef: [undefined],
		'~d': 'a user property that looks like a tag',
		'~~x': 'and one with two tildes',
		nested: { list: [{ at: new Date(0) }] },
	};
	const tagged = await idbm.encodeValue(value);
	const text = JSON.stringify(tagged);
	assert.deepEqual(tagged.when, { '~d': '2026-11-23T10:00:00.123Z' });
	assert.deepEqual(tagged.raw, { '~b': '_wAH' });
	assert.deepEqual(tagged.u8, { '~b': 'AQID', type: 'Uint8Array' });
	assert.deepEqual(tagged.blob, { '~b': 'aGVsbG8', type: 'text/plain' });
	assert.deepEqual(tagged.nums, [{ '~n': 'NaN' }, { '~n': 'Infinity' }, { '~n': '-Infinity' }, { '~n': '-0' }, 1]);
	assert.equal(tagged['~~d'], value['~d']);
	const back = idbm.decodeValue(JSON.parse(text));
	assert.equal(back.when.getTime(), value.when.getTime());
	assert.deepEqual(new Uint8Array(back.raw), new Uint8Array([255, 0, 7]));
	assert.ok(back.u8 instanceof Uint8Array);
	assert.deepEqual(Array.from(back.u8), [1, 2, 3]);
	assert.ok(back.f64 instanceof Float64Array);
	assert.ok(Object.is(back.f64[1], -0));
	assert.ok(back.blob instanceof Blob);
	assert.equal(back.blob.type, 'text/plain');
	assert.equal(await back.blob.text(), 'hello');
	assert.ok(Number.isNaN(back.nums[0]) && back.nums[1] === Infinity && back.nums[2] === -Infinity && Object.is(back.nums[3], -0));
	assert.deepEqual(back.undef, [undefined]);
	assert.equal(back['~d'], value['~d']);
	assert.equal(back['~~x'], value['~~x']);
	assert.equal(back.nested.list[0].at.getTime(), 0);
	await assert.rejects(idbm.encodeValue({ m: new Map() }), /cannot sync a Map/);
});

test('the text a put carries is the tagged form, with or without tags', () => {
	const sparse = [1];
	sparse[2] = 3;
	const values = [
		null, true, 'text', 0, 1.5, -2, { a: 1, b: [1, 'x', { c: null }] }, [],
		{ when: new Date(0) }, [NaN], { n: -0 }, { n: Infinity }, { '~d': 'looks like a tag' },
		{ u: undefined, v: 1 }, [undefined], sparse, new Uint8Array([1, 2]), { deep: { deeper: [{ at: new Date(1) }] } },
		Object.assign(Object.create(null), { bare: 1 }),
	];
	for (const v of values) assert.equal(encodeValueText(v), JSON.stringify(encodeValueSync(v, [], 0)), JSON.stringify(v));
	assert.equal(encodeValueText({ b: new Blob(['x']) }), null, 'a Blob is read at push time');
	assert.throws(() => encodeValueText({ m: new Map() }), /cannot sync a Map/);
	assert.throws(() => encodeValueText({ f: () => 1 }), /cannot sync a value of type function/);
});

test('drop-in capture: an app written against raw IndexedDB keeps its versions and upgrades', async () => {
	idbm.captureIndexedDB({ databases: ['rawapp'] });
	const upgrades = [];
	const open = version => new Promise((resolve, reject) => {
		const r = indexedDB.open('rawapp', version);
		r.onupgradeneeded = ev => {
			upgrades.push([ev.oldVersion, ev.newVersion]);
			const db = r.result;
			if (ev.oldVersion < 1) db.createObjectStore('todos', { keyPath: 'id' });
			if (ev.oldVersion < 2 && ev.newVersion >= 2) r.transaction.objectStore('todos').createIndex('byDone', 'done');
		};
		r.onsuccess = () => resolve(r.result);
		r.onerror = () => reject(r.error);
	});
	let db = await open(1);
	assert.equal(db.version, 1);
	assert.deepEqual(Array.from(db.objectStoreNames), ['todos']);
	let tx = db.transaction('todos', 'readwrite');
	const todos = tx.objectStore('todos');
	for (let i = 1; i <= 6; i++) todos.put({ id: i, done: false });
	todos.add({ id: 7, done: true });
	todos.delete(6);
	await txDone(tx);
	tx = db.transaction('todos', 'readwrite');
	tx.objectStore('todos').openCursor().onsuccess = ev => {
		const c = ev.target.result;
		if (!c) return;
		if (c.key === 1) c.update({ ...c.value, done: true });
		if (c.key === 2) c.delete();
		c.continue();
	};
	tx.objectStore('todos').delete(IDBKeyRange.bound(3, 4));
	await txDone(tx);
	db.close();
	let keys = (await outboxKeys('rawapp')).map(k => k[1]);
	assert.deepEqual(keys, [1, 2, 3, 4, 5, 6, 7]);

	db = await open(2);
	assert.equal(db.version, 2);
	assert.deepEqual(upgrades, [[0, 1], [1, 2]]);
	tx = db.transaction(['todos'], 'readwrite');
	tx.objectStore('todos').clear();
	await txDone(tx);
	db.close();
	await assert.rejects(open(1), e => e.name === 'VersionError');

	// Opening without a version gives the current app version, no upgrade.
	db = await open(undefined);
	assert.equal(db.version, 2);
	assert.deepEqual(upgrades, [[0, 1], [1, 2]]);
	db.close();

	// A read-only transaction is not touched; reading works as before.
	db = await open(2);
	tx = db.transaction('todos');
	assert.deepEqual(await req(tx.objectStore('todos').getAll()), []);
	db.close();
});

test('drop-in capture on a database that existed before: data already there is marked', async () => {
	// Made without capture: the name is not captured yet.
	await new Promise((resolve, reject) => {
		const r = indexedDB.open('legacy', 3);
		r.onupgradeneeded = () => r.result.createObjectStore('items');
		r.onsuccess = () => {
			const db = r.result;
			const tx = db.transaction('items', 'readwrite');
			tx.objectStore('items').put({ v: 1 }, 'one');
			tx.objectStore('items').put({ v: 2 }, 'two');
			tx.oncomplete = () => {
				db.close();
				resolve();
			};
		};
		r.onerror = () => reject(r.error);
	});
	idbm.captureIndexedDB({ databases: ['legacy'] });
	let upgraded = false;
	const db = await new Promise((resolve, reject) => {
		const r = indexedDB.open('legacy', 3);
		r.onupgradeneeded = () => {
			upgraded = true;
		};
		r.onsuccess = () => resolve(r.result);
		r.onerror = () => reject(r.error);
	});
	assert.equal(upgraded, false, 'the app sees no upgrade of its own');
	assert.equal(db.version, 3);
	assert.deepEqual(Array.from(db.objectStoreNames), ['items']);
	const tx = db.transaction('items', 'readwrite');
	tx.objectStore('items').put({ v: 3 }, 'three');
	await txDone(tx);
	db.close();
	assert.deepEqual((await outboxKeys('legacy')).map(k => k[1]).sort(), ['one', 'three', 'two']);
});

test('internal stores are created once and are never captured themselves', async () => {
	const db = await idbm.openDatabase('lib-internal', schema);
	const raw = await req(indexedDB.open('lib-internal'));
	const tx = idbm.internals.transaction(raw, [OUTBOX, REVS, META], 'readwrite');
	tx.objectStore(META).put(5, 'checkpoint');
	await txDone(tx);
	raw.close();
	assert.deepEqual(await outboxKeys('lib-internal'), []);
	db.close();
});

test('the SSE parser handles split chunks, CRLF, comments and multi-line data', () => {
	const got = [];
	const p = new idbm.SSEParser(e => got.push(e));
	p.push(': hello\r\nevent: change\r\ndata: {"seq"');
	p.push(':1}\r\n\r');
	p.push('\ndata: a\ndata: b\n\nevent: ping\n\n');
	assert.deepEqual(got, [
		{ event: 'change', data: '{"seq":1}', id: null },
		{ event: 'message', data: 'a\nb', id: null },
		{ event: 'ping', data: '', id: null },
	]);
});

test('backoff grows exponentially with jitter up to its cap, and resets', () => {
	const b = new idbm.Backoff(100, 1000);
	const steps = Array.from({ length: 8 }, () => b.next());
	for (const [i, d] of steps.entries()) {
		const step = Math.min(1000, 100 * 2 ** i);
		assert.ok(d >= step / 2 && d <= step, `step ${i}: ${d} within [${step / 2}, ${step}]`);
	}
	b.reset();
	assert.ok(b.next() <= 100);
});

test('the .d.ts declares every export of the module', async () => {
	const dts = (await import('node:fs')).readFileSync(new URL('../../src/web/idbmount.d.ts', import.meta.url), 'utf8');
	const declared = new Set([...dts.matchAll(/^export (?:declare )?(?:function|class|const|type|interface) (\w+)/gm)].map(m => m[1]));
	const missing = Object.keys(idbm).filter(name => name !== 'internals' && !declared.has(name));
	assert.deepEqual(missing, []);
});
