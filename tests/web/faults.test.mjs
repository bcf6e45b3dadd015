// What goes wrong, against the real daemon: bodies over its limit (413),
// a server answering 5xx (a fault-injecting proxy in front of the real
// daemon: the daemon itself only says 503 under load), an upgrade that
// another connection blocks. Each must surface as a clear event and lose
// nothing.
import 'fake-indexeddb/auto';
import { test, before, after } from 'node:test';

/* A full disk, as a browser reports it: puts of values over `quotaLimit`
 * bytes fail with QuotaExceededError while `quotaFull` is set. Installed
 * before idbmount.js patches the prototypes, so it is the "native" put the
 * library sees, like a browser's. fake-indexeddb has no quota of its own;
 * Chromium's quota override (CDP Storage.overrideQuotaForOrigin) had no
 * effect in Debian's build, so this is where a full disk is made. */
let quotaFull = false;
const realPut = IDBObjectStore.prototype.put;
IDBObjectStore.prototype.put = function put(value) {
	if (quotaFull && JSON.stringify(value ?? null).length > 10000)
		throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
	return realPut.apply(this, arguments);
};
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
const idbm = await import('../../src/web/idbmount.js');
import { Daemon, eventually } from './daemon.mjs';

let d;
let token;
before(async () => {
	d = new Daemon(['--max-body', '65536']);
	token = d.addClient('alice');
	await d.start();
});
after(async () => {
	await d.cleanup();
});

function newSync(database, extra = {}) {
	return new idbm.Sync({ database, url: d.url, token, lock: false, ...extra });
}

function errorsOf(sync) {
	const errors = [];
	sync.addEventListener('error', ev => errors.push(ev.detail));
	return errors;
}

test('bodies over the server limit: batches shrink, one record too large alone is rejected with its reason', async () => {
	const db = await idbm.openDatabase('big', { version: 1, stores: [{ name: 'rows' }] });
	await db.transaction(['rows'], 'readwrite', tx => {
		for (let i = 0; i < 300; i++) tx.store('rows').put({ i, pad: 'p'.repeat(400) }, i);
		tx.store('rows').put({ pad: 'x'.repeat(100000) }, 'huge');
	});
	const sync = newSync('big');
	const errors = errorsOf(sync);
	const states = [];
	sync.addEventListener('state', ev => states.push(ev.detail));
	await sync.cycle();
	assert.equal(fs.readdirSync(d.path('alice', 'big', 'rows')).length, 300);
	assert.equal(d.exists('alice', 'big', 'rows', 'huge.json'), false);
	assert.equal(await sync.recordState('rows', 'huge'), 'rejected');
	assert.equal(await sync.recordState('rows', 7), 'synced');
	assert.equal(await sync.outboxLength(), 1, 'the rejected write is kept, not dropped');
	assert.ok(errors.some(e => e.kind === 'too-large' && e.status === 413), JSON.stringify(errors));
	const rejected = states.find(s => s.state === 'rejected');
	assert.ok(rejected === undefined || rejected.keys.includes('huge'));
	// Written again within the limit, it goes.
	await db.put('rows', { pad: 'small now' }, 'huge');
	assert.equal(await sync.recordState('rows', 'huge'), 'pending');
	await sync.cycle();
	assert.equal(await sync.outboxLength(), 0);
	/* The mount cached "no such file" from the check above; the daemon
	 * invalidates it from its notifier thread, so wait for that. */
	await eventually(() => d.exists('alice', 'big', 'rows', 'huge.json'), 'huge.json in the mount');
	assert.deepEqual(JSON.parse(d.read('alice', 'big', 'rows', 'huge.json')), { pad: 'small now' });
	sync.stop();
	db.close();
});

/* A proxy in front of the real daemon that answers `status` to the next
 * `failures` pushes instead of forwarding them. */
function faultyProxy(target) {
	const proxy = { failures: 0, status: 503, pushes: 0 };
	proxy.server = http.createServer((req, res) => {
		const chunks = [];
		req.on('data', c => chunks.push(c));
		req.on('end', () => {
			if (req.url.startsWith('/v1/push')) {
				proxy.pushes += 1;
				if (proxy.failures > 0) {
					proxy.failures -= 1;
					res.writeHead(proxy.status, { 'Content-Type': 'application/json' });
					res.end('{"error":"unavailable","detail":"injected by the test proxy"}');
					return;
				}
			}
			/* As nginx's proxy_pass does by default: the Host is the
			 * upstream's, which the daemon answers for. */
			const headers = { ...req.headers, host: new URL(target).host };
			const up = http.request(target + req.url, { method: req.method, headers }, r => {
				res.writeHead(r.statusCode, r.headers);
				r.pipe(res);
			});
			up.on('error', err => {
				res.writeHead(502);
				res.end(String(err));
			});
			up.end(Buffer.concat(chunks));
		});
	});
	return new Promise(resolve => proxy.server.listen(0, '127.0.0.1', () => {
		proxy.url = `http://127.0.0.1:${proxy.server.address().port}/`;
		resolve(proxy);
	}));
}

test('a server answering 5xx is a server error; nothing is lost and nothing applied twice', async () => {
	const proxy = await faultyProxy(d.url);
	try {
		const db = await idbm.openDatabase('flaky', { version: 1, stores: [{ name: 'notes' }] });
		for (let i = 0; i < 5; i++) await db.put('notes', { i }, 'n' + i);
		const sync = newSync('flaky', { url: proxy.url });
		const since = d.changes().at(-1)?.seq ?? 0;
		proxy.failures = 2;
		await assert.rejects(sync.cycle(), e => e.kind === 'server' && e.status === 503 && /injected/.test(e.message));
		await assert.rejects(sync.cycle(), e => e.kind === 'server');
		assert.equal(await sync.outboxLength(), 5);
		assert.equal(await sync.recordState('notes', 'n0'), 'pending');
		await sync.cycle();
		assert.equal(await sync.outboxLength(), 0);
		const mine = d.changes(since).filter(c => c.db === 'flaky');
		assert.equal(mine.length, 5, 'each write applied once');
		assert.equal(proxy.pushes, 3);
		sync.stop();
		db.close();
	} finally {
		proxy.server.close();
	}
});

test('an acknowledgement lost on the way is retried with the same ids and applied once', async () => {
	const proxy = await faultyProxy(d.url);
	try {
		const db = await idbm.openDatabase('lostack', { version: 1, stores: [{ name: 'notes' }] });
		await db.put('notes', 'v', 'k');
		const since = d.changes().at(-1)?.seq ?? 0;
		// The push reaches the daemon, but its answer is replaced by a 502.
		const orig = proxy.server.listeners('request')[0];
		proxy.server.removeAllListeners('request');
		let dropped = false;
		proxy.server.on('request', (req, res) => {
			if (!dropped && req.url.startsWith('/v1/push')) {
				dropped = true;
				const realEnd = res.end.bind(res);
				res.writeHead = () => res;
				res.end = () => {
					res.statusCode = 502;
					realEnd('lost');
				};
				res.write = () => true;
			}
			orig(req, res);
		});
		const sync = newSync('lostack', { url: proxy.url });
		await assert.rejects(sync.cycle());
		await sync.cycle();
		assert.equal(await sync.outboxLength(), 0);
		assert.equal(d.changes(since).filter(c => c.db === 'lostack').length, 1);
		sync.stop();
		db.close();
	} finally {
		proxy.server.close();
	}
});

test('an upgrade for a store from the server that another connection blocks is reported as not applied', async () => {
	const db = await idbm.openDatabase('blocked', { version: 1, stores: [{ name: 'a' }] });
	const sync = newSync('blocked');
	await sync.cycle();
	// An app connection that ignores versionchange.
	const stubborn = await new Promise((resolve, reject) => {
		const r = indexedDB.open('blocked');
		r.onsuccess = () => resolve(r.result);
		r.onerror = () => reject(r.error);
	});
	db.close();
	fs.mkdirSync(d.path('alice', 'blocked', 'later'));
	fs.writeFileSync(d.path('alice', 'blocked', 'later', 'z.json'), '"waits"\n');
	const schema = [];
	sync.addEventListener('schema', ev => schema.push(ev.detail));
	await sync.cycle();
	assert.deepEqual(sync.state.notApplied.map(n => n.store), ['later']);
	assert.match(sync.state.notApplied[0].reason, /blocked/);
	assert.ok(schema.some(s => s.notApplied && s.notApplied.includes('later')));
	// Once the app lets go, the upgrade runs and the parked record arrives.
	stubborn.close();
	await sync.cycle();
	const again = await idbm.openDatabase('blocked', { version: 1, stores: [{ name: 'a' }] });
	assert.equal(await again.get('later', 'z'), 'waits');
	sync.stop();
	again.close();
});

test('a full disk while applying server changes is a quota error; nothing is lost, the pull resumes', async () => {
	const db = await idbm.openDatabase('quota', { version: 1, stores: [{ name: 'notes' }] });
	const sync = newSync('quota');
	await sync.cycle();
	const errors = errorsOf(sync);
	d.ctl('put', 'alice/quota/notes', '"small"', '1');
	d.ctl('put', 'alice/quota/notes', '"big"', JSON.stringify({ pad: 'b'.repeat(50000) }));
	const before = sync.state.checkpoint;
	quotaFull = true;
	try {
		await assert.rejects(sync.cycle(), e => e.kind === 'quota');
		sync.reportError(new idbm.SyncError('quota', 'x'));
	} finally {
		quotaFull = false;
	}
	assert.equal(errors[0].kind, 'quota');
	assert.equal(sync.state.checkpoint, before, 'the checkpoint did not move past what was not stored');
	assert.equal(await db.get('notes', 'small'), undefined, 'the page was applied all or nothing');
	await sync.cycle();
	assert.equal(await db.get('notes', 'small'), 1);
	assert.equal((await db.get('notes', 'big')).pad.length, 50000);
	sync.stop();
	db.close();
});
