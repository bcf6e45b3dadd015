// profile_browser.mjs - where the time of bench_browser.mjs goes, on demand
// (not in ctest):
//
//   node tests/bench/profile_browser.mjs [drain|ack]
//
// drain: 10,000 records (~400 bytes, 10 transactions of 1,000) written with
// no sync running, then the time from starting the sync until all are
// acknowledged; ack: the sync runs while they are written. Prints
//   - a timeline of the sync's steps (Sync.prototype methods wrapped with
//     performance.now(): readBatch, encodeBatch, request, acknowledge, ...),
//     milliseconds from the start;
//   - the IndexedDB requests made, per step and store (IDBObjectStore
//     methods wrapped before the library is loaded, so the library's own
//     requests are counted too; steps that overlap share the count of the
//     one that started last);
//   - the CPU seconds each process used meanwhile (/proc: the daemon,
//     Chromium's browser process, which runs IndexedDB, its renderer).
// IDBMOUNT_LIB=path profiles another copy of the library (a src/web
// directory or a one-file library: see library_route.mjs).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';

const here = path.dirname(fileURLToPath(import.meta.url));
const { launchChromium } = await import(path.join(here, '../web/chromium.mjs'));
const { useReleaseBuild } = await import('./release_build.mjs');
const measured = useReleaseBuild(); /* before daemon.mjs reads IDBMOUNT_BIN */
const { Daemon } = await import(path.join(here, '../web/daemon.mjs'));
const { routeLibrary } = await import('./library_route.mjs');

const N = 10000;
const mode = process.argv[2] || 'drain';
if (mode !== 'drain' && mode !== 'ack') {
	console.error('usage: node tests/bench/profile_browser.mjs [drain|ack]');
	process.exit(2);
}
const d = new Daemon();
const token = d.addClient('bench');
await d.start();
const browser = await launchChromium();

/* CPU seconds so far of the daemon and of Chromium's processes by type. */
function cpuSeconds() {
	const tick = 100; /* USER_HZ on Linux */
	const out = {};
	for (const pid of fs.readdirSync('/proc').filter(x => /^\d+$/.test(x))) {
		let cmd;
		let stat;
		try {
			cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
			stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
		} catch {
			continue; /* gone meanwhile */
		}
		let kind = null;
		if (Number(pid) === d.proc?.pid) kind = 'daemon';
		else if (cmd.includes('chromium')) kind = 'chromium ' + (cmd.match(/--type=([a-z-]+)/)?.[1] || 'browser');
		if (!kind) continue;
		const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
		out[kind] = (out[kind] || 0) + (Number(fields[11]) + Number(fields[12])) / tick;
	}
	return out;
}

try {
	const page = await browser.newPage();
	await routeLibrary(page, process.env.IDBMOUNT_LIB);
	await page.goto(d.url + '/healthz');
	await page.setContent('<!doctype html><title>profile</title>');
	await page.evaluate(async ({ N, token, mode }) => {
		const counts = {};
		let step = 'app';
		for (const name of ['get', 'getAll', 'getAllKeys', 'getAllRecords', 'count', 'openCursor', 'put', 'add', 'delete', 'clear']) {
			const original = IDBObjectStore.prototype[name];
			if (typeof original !== 'function') continue;
			IDBObjectStore.prototype[name] = function (...args) {
				const k = `${step} ${this.name}.${name}`;
				counts[k] = (counts[k] || 0) + 1;
				return original.apply(this, args);
			};
		}
		const m = await import('/idbmount.js');
		const timeline = [];
		let t0 = 0;
		for (const name of ['readBatch', 'encodeBatch', 'request', 'acknowledge', 'outboxLength', 'pullPage', 'applyChanges', 'compact', 'sendSchema', 'foldRevisions']) {
			const original = m.Sync.prototype[name];
			if (typeof original !== 'function') continue;
			m.Sync.prototype[name] = async function (...args) {
				const label = name === 'request' ? `${args[0]} /${args[1].split('?')[0]}` : name;
				const before = step;
				const start = performance.now();
				step = label;
				try {
					return await original.apply(this, args);
				} finally {
					timeline.push([label, start - t0, performance.now() - t0]);
					step = before;
				}
			};
		}
		const pad = 'x'.repeat(360);
		const db = await m.openDatabase('profile-' + mode, { version: 1, stores: [{ name: 'rows', keyPath: 'id' }] });
		const write = async () => {
			for (let b = 0; b < N; b += 1000) {
				await db.transaction(['rows'], 'readwrite', tx => {
					const s = tx.store('rows');
					for (let i = b; i < b + 1000; i++) s.raw.put({ id: i, name: 'record ' + i, pad });
				});
			}
		};
		if (mode === 'drain') await write();
		window.profileRun = async () => {
			let sync;
			if (mode === 'ack') {
				sync = db.sync({ token });
				await new Promise(r => {
					const check = () => (sync.state.leader && !sync.state.syncing ? r() : setTimeout(check, 20));
					check();
				});
			}
			t0 = performance.now();
			step = 'app';
			let writtenMs = null;
			if (mode === 'ack') {
				await write();
				writtenMs = performance.now() - t0;
			} else {
				sync = db.sync({ token });
			}
			await new Promise(resolve => {
				const check = () => {
					if (sync.state.leader && !sync.state.syncing && sync.state.outbox === 0) resolve();
				};
				sync.addEventListener('status', check);
				sync.wake();
			});
			const totalMs = performance.now() - t0;
			sync.stop();
			return { totalMs, writtenMs, timeline, counts };
		};
	}, { N, token, mode });
	const before = cpuSeconds();
	const run = await page.evaluate(() => window.profileRun());
	const after = cpuSeconds();

	console.log(`profile (${mode}): ${N} records, library ${process.env.IDBMOUNT_LIB || 'built in'}, daemon: ${measured}, load average ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
	console.log(`all acknowledged after ${run.totalMs.toFixed(0)} ms` + (run.writtenMs === null ? '' : `; the app's writes took ${run.writtenMs.toFixed(0)} ms`));
	console.log('\nsteps (ms from the start):');
	for (const [label, start, end] of run.timeline.sort((a, b) => a[1] - b[1]))
		console.log(`  ${label.padEnd(20)} ${start.toFixed(0).padStart(6)} ${end.toFixed(0).padStart(6)} ${(end - start).toFixed(0).padStart(6)}`);
	console.log('\nIndexedDB requests (step, store.method):');
	for (const [k, n] of Object.entries(run.counts).sort((a, b) => b[1] - a[1])) console.log(`  ${String(n).padStart(6)}  ${k}`);
	console.log('\nCPU seconds meanwhile:');
	for (const k of Object.keys(after).sort()) {
		const used = after[k] - (before[k] || 0);
		if (used >= 0.005) console.log(`  ${k.padEnd(24)} ${used.toFixed(2)}`);
	}
} finally {
	await browser.close();
	await d.cleanup();
}
