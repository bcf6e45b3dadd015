// bench_capture.mjs - what drop-in capture costs an app's writes, on demand
// (not in ctest; numbers depend on the machine):
//
//   node tests/bench/bench_capture.mjs [--rounds 5] [--compare OLD.js]
//
// (after a build, with IDBMOUNT_BIN / IDBMOUNTCTL_BIN or build/ binaries,
// and tests/web's node_modules installed: cd tests/web && npm ci)
//
// In real Chromium (Debian's), on a page of a real daemon, with no sync
// running: each write pattern below runs against a plain IndexedDB
// database ("raw") and a captured one in the same page, in slices that
// alternate raw and captured (a change of the machine's load falls on
// both alike); the records are ~400 bytes. Patterns:
//   one write per transaction     1,000 transactions of one put (what
//                                 idb-keyval's set() and localforage's
//                                 setItem() do), 10 slices of 100
//   1,000 writes per transaction  10 transactions of 1,000 puts
//   a generated key per transaction  1,000 transactions of one add() into
//                                 an autoIncrement store, 10 slices of 100
//   cursor updates                a transaction updating 1,000 records
//                                 through a cursor, 5 times
//   clear()                       clearing a store of 1,000 records, 10
//                                 times (the refill is not timed)
// Target: captured <= 1.3x raw for every pattern.
//
// --compare OLD.js runs the same rounds with another copy of the library
// too (e.g. `git show main:src/web/idbmount.js > /tmp/old.js`), in its own
// pages, alternating with the built-in one: an A/B in one run.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';

const here = path.dirname(fileURLToPath(import.meta.url));
const { chromium } = await import(path.join(here, '../web/node_modules/playwright-core/index.mjs'));
const { Daemon } = await import(path.join(here, '../web/daemon.mjs'));

const args = process.argv.slice(2);
const option = (name, fallback) => {
	const i = args.indexOf(name);
	return i >= 0 ? args[i + 1] : fallback;
};
const ROUNDS = Number(option('--rounds', 5));
const compare = option('--compare', null);
const libraries = [{ name: 'built in', text: null }];
if (compare) libraries.push({ name: path.basename(compare), text: fs.readFileSync(compare, 'utf8') });

const d = new Daemon();
d.addClient('bench');
await d.start();
const browser = await chromium.launch({
	executablePath: process.env.IDBMOUNT_CHROMIUM || '/usr/bin/chromium',
	args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking',
		'--disable-component-update', '--disable-sync', '--no-first-run'],
});

/* One round in a fresh page: every pattern, raw and captured, each pattern
 * in its own pair of databases. Returns {pattern: {raw, captured}} in ms. */
async function round(library, roundNo) {
	const context = await browser.newContext();
	const page = await context.newPage();
	if (library.text !== null)
		await page.route('**/idbmount.js', r => r.fulfill({ contentType: 'text/javascript', body: library.text }));
	await page.goto(d.url + '/healthz');
	const result = await page.evaluate(async roundNo => {
		const m = await import('/idbmount.js');
		const tag = 'r' + roundNo;
		m.captureIndexedDB({ databases: name => name.startsWith('captured-') });
		const pad = 'x'.repeat(360);
		const rec = i => ({ id: i, name: 'record ' + i, pad });
		const settled = r => new Promise((resolve, reject) => {
			r.onsuccess = () => resolve(r.result);
			r.onerror = () => reject(r.error);
		});
		const committed = tx => new Promise((resolve, reject) => {
			tx.oncomplete = resolve;
			tx.onabort = () => reject(tx.error);
		});
		const open = name => {
			const r = indexedDB.open(name, 1);
			r.onupgradeneeded = () => {
				r.result.createObjectStore('rows', { keyPath: 'id' });
				r.result.createObjectStore('log', { autoIncrement: true });
			};
			return settled(r);
		};
		const fill = async db => {
			const tx = db.transaction(['rows'], 'readwrite');
			for (let i = 0; i < 1000; i++) tx.objectStore('rows').put(rec(i));
			await committed(tx);
		};
		/* Each pattern is run in slices, raw and captured alternating
		 * slice by slice, so that a change in the machine's load (other
		 * work on the CPUs) falls on both alike. A slice returns its ms. */
		const timed = async fn => {
			const t0 = performance.now();
			await fn();
			return performance.now() - t0;
		};
		const patterns = {
			'one write per transaction': [10, (db, n) => timed(async () => {
				for (let i = 0; i < 100; i++) {
					const tx = db.transaction(['rows'], 'readwrite');
					tx.objectStore('rows').put(rec(n * 100 + i));
					await committed(tx);
				}
			})],
			'1,000 writes per transaction': [10, (db, n) => timed(async () => {
				const tx = db.transaction(['rows'], 'readwrite');
				for (let i = 0; i < 1000; i++) tx.objectStore('rows').put(rec(n * 1000 + i));
				await committed(tx);
			})],
			'a generated key per transaction': [10, db => timed(async () => {
				for (let i = 0; i < 100; i++) {
					const tx = db.transaction(['log'], 'readwrite');
					tx.objectStore('log').add({ at: i, pad });
					await committed(tx);
				}
			})],
			'cursor updates (1,000 records)': [5, async (db, n) => {
				if (n === 0) await fill(db);
				return timed(async () => {
					const tx = db.transaction(['rows'], 'readwrite');
					tx.objectStore('rows').openCursor().onsuccess = ev => {
						const c = ev.target.result;
						if (!c) return;
						c.update({ ...c.value, n });
						c.continue();
					};
					await committed(tx);
				});
			}],
			'clear() of 1,000 records': [10, async db => {
				await fill(db);
				return timed(async () => {
					const tx = db.transaction(['rows'], 'readwrite');
					tx.objectStore('rows').clear();
					await committed(tx);
				});
			}],
		};
		const out = {};
		let k = 0;
		for (const [name, [slices, slice]] of Object.entries(patterns)) {
			const dbs = { raw: await open(`raw-${tag}-${k}`), captured: await open(`captured-${tag}-${k}`) };
			k += 1;
			out[name] = { raw: 0, captured: 0 };
			for (let n = 0; n < slices; n++)
				for (const which of (n + roundNo) % 2 ? ['raw', 'captured'] : ['captured', 'raw']) out[name][which] += await slice(dbs[which], n);
			dbs.raw.close();
			dbs.captured.close();
		}
		return out;
	}, roundNo);
	await context.close();
	return result;
}

const median = a => {
	const s = a.slice().sort((x, y) => x - y);
	return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

try {
	const load = () => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
	console.log(`capture cost: Chromium ${browser.version()}, ${ROUNDS} rounds, ${new Date().toISOString()}, load average ${load()} at the start`);
	const results = new Map(libraries.map(l => [l.name, []]));
	for (let r = 0; r < ROUNDS; r++)
		for (const library of r % 2 ? libraries.slice().reverse() : libraries) results.get(library.name).push(await round(library, r));
	console.log(`load average ${load()} at the end`);
	const patternNames = Object.keys(results.get(libraries[0].name)[0]);
	const rows = [['pattern', 'library', 'raw ms (median)', 'captured ms (median)', 'captured / raw (median of rounds; all)']];
	for (const p of patternNames)
		for (const library of libraries) {
			const runs = results.get(library.name).map(x => x[p]);
			const ratios = runs.map(x => x.captured / x.raw);
			rows.push([p, library.name, median(runs.map(x => x.raw)).toFixed(0), median(runs.map(x => x.captured)).toFixed(0),
				`${median(ratios).toFixed(2)}x; ${ratios.map(x => x.toFixed(2)).join(' ')}`]);
		}
	const w = rows[0].map((_, i) => Math.max(...rows.map(r => r[i].length)));
	for (const r of rows) console.log(r.map((c, i) => c.padEnd(w[i])).join(' | '));
} finally {
	await browser.close();
	await d.cleanup();
}
