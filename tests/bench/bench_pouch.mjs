// bench_pouch.mjs - the PouchDB peer comparison (src/DESIGN.md, "Targets"), on
// demand (not in ctest; numbers depend on the machine):
//
//   cd tests/bench/pouch && npm ci --no-audit --no-fund   (pouchdb, pouchdb-server)
//   cd tests/web && npm ci --no-audit --no-fund           (playwright-core)
//   node tests/bench/bench_pouch.mjs [--on-disk]
//
// Starts pouchdb-server in memory (--in-memory; with --on-disk: its default
// LevelDB backend in a fresh temporary directory) on a free loopback port, and
// in Debian's Chromium, on a page of that server (same origin, so no CORS in
// the way, as idbmount.js runs on a page of the daemon in bench_browser.mjs):
//   1. PouchDB in the browser (dist/pouchdb.min.js, IndexedDB adapter): the
//      time from the first write of 10,000 docs of ~400 bytes (the shape
//      bench_browser.mjs uses; written as 10 bulkDocs of 1,000, the
//      counterpart of its 10 transactions of 1,000) until a one-shot
//      replication to the server has finished, with PouchDB's default
//      batch_size (100) and with batch_size 1,000. The server's doc_count
//      is checked afterwards.
//   2. From node: pouchdb-server's _bulk_docs ingest of 100,000 such docs in
//      bodies of 1,000 (encoded before the clock starts, every answer
//      checked), one connection, one request at a time.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startPouchServer, pouchBrowserBuild, json } from './pouch_server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const { launchChromium } = await import(path.join(here, '../web/chromium.mjs'));

const onDisk = process.argv.includes('--on-disk');
for (const a of process.argv.slice(2)) if (a !== '--on-disk') throw new Error(`unknown argument ${a} (only --on-disk)`);
const N = 10000;
const BULK_TOTAL = 100000;
const BATCH = 1000;
const pad = 'x'.repeat(360);
const doc = i => ({ _id: 'r' + String(i).padStart(7, '0'), name: 'record ' + i, pad });

const { url, version, stop: stopServer } = await startPouchServer({ onDisk });
let browser = null;
try {
	browser = await launchChromium();

	const replicate = async (dbName, batchSize) => {
		const remote = `${url}/${dbName}`;
		await json(await fetch(remote, { method: 'PUT' }), 'PUT ' + dbName);
		const page = await browser.newPage();
		await page.goto(url + '/');
		await page.setContent('<!doctype html><title>bench</title>');
		await page.addScriptTag({ path: pouchBrowserBuild });
		const r = await page.evaluate(async ({ N, BATCH, pad, remote, dbName, batchSize }) => {
			const db = new PouchDB('local-' + dbName);
			if (db.adapter !== 'idb' && db.adapter !== 'indexeddb') throw new Error('adapter ' + db.adapter);
			const t0 = performance.now();
			for (let b = 0; b < N; b += BATCH) {
				const docs = [];
				for (let i = b; i < b + BATCH; i++) docs.push({ _id: 'r' + String(i).padStart(7, '0'), name: 'record ' + i, pad });
				const res = await db.bulkDocs(docs);
				const bad = res.filter(x => !x.ok);
				if (bad.length) throw new Error('bulkDocs: ' + JSON.stringify(bad[0]));
			}
			const tWritten = performance.now();
			const opts = batchSize ? { batch_size: batchSize } : {};
			const info = await PouchDB.replicate(db, remote, opts);
			const t1 = performance.now();
			if (!info.ok || info.docs_written !== N) throw new Error('replication: ' + JSON.stringify(info));
			return { adapter: db.adapter, writeMs: tWritten - t0, totalMs: t1 - t0, written: info.docs_written };
		}, { N, BATCH, pad, remote, dbName, batchSize });
		await page.close();
		const info = await json(await fetch(remote), 'GET ' + dbName);
		if (info.doc_count !== N) throw new Error(`${dbName} holds ${info.doc_count} docs, not ${N}`);
		return r;
	};
	const replDefault = await replicate('repl-default', 0);
	const repl1000 = await replicate('repl-1000', 1000);

	/* _bulk_docs from node: bodies encoded before the clock starts. */
	await json(await fetch(url + '/bulk', { method: 'PUT' }), 'PUT bulk');
	const bodies = [];
	for (let b = 0; b < BULK_TOTAL; b += BATCH) {
		const docs = [];
		for (let i = b; i < b + BATCH; i++) docs.push(doc(i));
		bodies.push(JSON.stringify({ docs }));
	}
	const bodyBytes = bodies.reduce((a, s) => a + Buffer.byteLength(s), 0);
	const t0 = performance.now();
	for (const body of bodies) {
		const res = await json(await fetch(url + '/bulk/_bulk_docs', {
			method: 'POST', headers: { 'content-type': 'application/json' }, body,
		}), '_bulk_docs');
		if (res.length !== BATCH || res.some(x => !x.ok)) throw new Error('_bulk_docs answer: ' + JSON.stringify(res.find(x => !x.ok) ?? res.length));
	}
	const bulkMs = performance.now() - t0;
	const bulkInfo = await json(await fetch(url + '/bulk'), 'GET bulk');
	if (bulkInfo.doc_count !== BULK_TOTAL) throw new Error(`bulk holds ${bulkInfo.doc_count} docs, not ${BULK_TOTAL}`);

	const rate = (n, ms) => `${(n / ms * 1000).toFixed(0)}`;
	const rows = [
		['PouchDB bulkDocs 10 x 1,000 (browser, ' + replDefault.adapter + ')', `${replDefault.writeMs.toFixed(0)} ms`, `${rate(N, replDefault.writeMs)} docs/s`],
		['PouchDB write -> replicated, batch_size 100 (default)', `${replDefault.totalMs.toFixed(0)} ms`, `${rate(N, replDefault.totalMs)} docs/s`],
		['PouchDB bulkDocs 10 x 1,000 (second database)', `${repl1000.writeMs.toFixed(0)} ms`, `${rate(N, repl1000.writeMs)} docs/s`],
		['PouchDB write -> replicated, batch_size 1,000', `${repl1000.totalMs.toFixed(0)} ms`, `${rate(N, repl1000.totalMs)} docs/s`],
		[`pouchdb-server _bulk_docs, ${BULK_TOTAL / BATCH} x ${BATCH} (node, 1 connection)`, `${bulkMs.toFixed(0)} ms`, `${rate(BULK_TOTAL, bulkMs)} docs/s`],
	];
	const w = [0, 1, 2].map(i => Math.max(...rows.map(r => r[i].length)));
	console.log(`PouchDB benchmark: ${N} docs of ~400 bytes, Chromium ${browser.version()}, pouchdb-server ${version} (${onDisk ? 'LevelDB on disk' : 'in memory'}), `
		+ `_bulk_docs bodies ${(bodyBytes / bodies.length / 1024).toFixed(0)} KiB`);
	for (const r of rows) console.log(r.map((c, i) => c.padEnd(w[i])).join(' | '));
} finally {
	if (browser) await browser.close();
	await stopServer();
}
