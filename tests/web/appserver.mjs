// A static server of its own origin for the app pages of tests/web/apps:
// the pages import /idbmount.js from the daemon (another origin, allowed
// with --allow-origin), as an app served elsewhere does. "%DAEMON%" in an
// .html page is replaced with the daemon's URL; /node_modules/ serves the
// libraries installed by package-lock.json.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.json': 'application/json' };

export class AppServer {
	constructor(daemonUrl) {
		this.daemonUrl = daemonUrl;
	}

	file(urlPath) {
		const rel = decodeURIComponent(urlPath.split('?')[0]);
		const root = rel.startsWith('/node_modules/') ? here : path.join(here, 'apps');
		const file = path.normalize(path.join(root, rel));
		if (!file.startsWith(root + path.sep)) return null;
		return fs.existsSync(file) && fs.statSync(file).isFile() ? file : null;
	}

	start() {
		this.server = http.createServer((req, res) => {
			const file = this.file(req.url);
			if (!file) {
				res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
				return;
			}
			let body = fs.readFileSync(file);
			if (file.endsWith('.html')) body = body.toString('utf8').replaceAll('%DAEMON%', this.daemonUrl);
			res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream', 'Cache-Control': 'no-store' }).end(body);
		});
		return new Promise(resolve => this.server.listen(0, '127.0.0.1', () => {
			this.url = `http://127.0.0.1:${this.server.address().port}`;
			resolve(this);
		}));
	}

	stop() {
		this.server.closeAllConnections();
		return new Promise(resolve => this.server.close(() => resolve()));
	}
}
