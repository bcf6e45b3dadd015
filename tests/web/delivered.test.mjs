// "Delivered" in the browser: once a pipeline took a batch (here Flume's
// rename of a dir-sink batch to .COMPLETED), the daemon's pull and event
// stream say so and the library marks the records delivered, live.
import 'fake-indexeddb/auto';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as idbm from '../../src/web/idbmount.js';
import { Daemon, eventually } from './daemon.mjs';

let d;
let token;
let spool;
before(async () => {
	d = new Daemon();
	spool = path.join(d.root, 'spool');
	const config = path.join(d.root, 'sinks.ini');
	fs.writeFileSync(config, `[sink spool]\ntype = dir\npath = ${spool}\nmax_records = 100\nmax_age = 50ms\nacknowledge = rename\n`);
	d.args = ['--config', config];
	token = d.addClient('alice');
	await d.start();
});
after(async () => {
	await d.cleanup();
});

function batches() {
	return fs.existsSync(spool) ? fs.readdirSync(spool).filter(n => !n.startsWith('.') && !n.endsWith('.COMPLETED')) : [];
}

test('records become delivered once the pipeline took their batch', async () => {
	const db = await idbm.openDatabase('shipped', { version: 1, stores: [{ name: 'orders', keyPath: 'id' }] });
	const sync = new idbm.Sync({ database: 'shipped', url: d.url, token, lock: false });
	const states = [];
	sync.addEventListener('state', ev => states.push(ev.detail));
	sync.start();
	for (let i = 1; i <= 3; i++) await db.put('orders', { id: i, item: 'tea' });
	await eventually(async () => (await sync.recordState('orders', 3)) === 'synced', 'the records synced');
	await eventually(() => batches().length > 0, 'a batch in the spool directory');
	assert.equal(await sync.recordState('orders', 1), 'synced', 'published is not yet delivered');
	for (const name of batches()) fs.renameSync(path.join(spool, name), path.join(spool, name + '.COMPLETED'));
	await eventually(async () => (await sync.recordState('orders', 3)) === 'delivered', 'the records delivered');
	assert.deepEqual(await sync.storeState('orders'), { pending: 0, rejected: 0, synced: 0, delivered: 3 });
	assert.ok(states.some(s => typeof s.delivered === 'number'), 'a state event announced it');
	sync.stop();
	db.close();
});
