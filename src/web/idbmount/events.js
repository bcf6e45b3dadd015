/* events.js - the event stream: /v1/events, followed while a tab leads, so
 * the sync loop hears of changes on the server at once.
 *
 * Transport (decision): /v1/events is read with fetch() and a small
 * Server-Sent Events parser, because EventSource cannot send the
 * Authorization header and a token in the URL would end up in logs.
 */
import { SyncError, sleep } from './failures.js';

/* Splits an SSE byte stream into events: [{event, data, id}]. */
export class SSEParser {
	constructor(onEvent) {
		this.onEvent = onEvent;
		this.buffer = '';
		this.reset();
	}
	reset() {
		this.event = '';
		this.data = [];
		this.id = null;
	}
	push(text) {
		this.buffer += text;
		let nl;
		while ((nl = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
			const line = this.buffer.slice(0, nl);
			const sep = this.buffer[nl] === '\r' && this.buffer[nl + 1] === '\n' ? 2 : 1;
			if (this.buffer[nl] === '\r' && nl + 1 === this.buffer.length) break; /* maybe \r\n split */
			this.buffer = this.buffer.slice(nl + sep);
			this.line(line);
		}
	}
	line(line) {
		if (line === '') {
			if (this.data.length || this.event) this.onEvent({ event: this.event || 'message', data: this.data.join('\n'), id: this.id });
			this.reset();
			return;
		}
		if (line.startsWith(':')) return;
		const colon = line.indexOf(':');
		const field = colon < 0 ? line : line.slice(0, colon);
		let value = colon < 0 ? '' : line.slice(colon + 1);
		if (value.startsWith(' ')) value = value.slice(1);
		if (field === 'event') this.event = value;
		else if (field === 'data') this.data.push(value);
		else if (field === 'id') this.id = value;
	}
}
/* Follows /v1/events while this tab leads; each event wakes the loop.
 * A stream that cannot connect (no answer, or 5xx) counts as a failed
 * attempt (noteFailure); while the sync is failing the stream waits
 * for a round that gets through, which is the one probe per backoff
 * step. */
export async function followEvents(sync, signal) {
	const decoder = new TextDecoder();
	while (!signal.aborted) {
		if (sync.retry) {
			await sync.untilReachable(signal);
			continue;
		}
		let unreachable = false;
		try {
			if (sync.authBlocked) {
				await sleep(1000, signal);
				continue;
			}
			let res;
			try {
				res = await sync.fetchImpl(sync.url + 'v1/events?since=' + encodeURIComponent(sync.state.checkpoint ?? 0), {
					headers: { Authorization: 'Bearer ' + sync.token, Accept: 'text/event-stream' },
					signal,
				});
			} catch (err) {
				unreachable = true;
				throw err;
			}
			if (!res.ok || !res.body) {
				unreachable = res.status >= 500 || res.status === 429;
				throw new SyncError(res.status === 401 ? 'auth' : 'server', 'events answered ' + res.status, { status: res.status });
			}
			sync.eventBackoff.reset();
			const parser = new SSEParser(ev => {
				if (ev.event === 'change' || ev.event === 'message') {
					try {
						const data = JSON.parse(ev.data);
						if (typeof data?.delivered === 'number' && data.delivered !== sync.state.delivered) {
							sync.setState({ delivered: data.delivered });
							sync.broadcast('state', { delivered: data.delivered });
						}
					} catch {
						/* an event without JSON data still means "pull" */
					}
				}
				if (ev.event !== 'ping') sync.wake();
			});
			const reader = res.body.getReader();
			/* Catch up on what happened while disconnected; a stream that
			 * got through while the rounds failed ends their wait. */
			sync.wake(sync.retry ? 'retry' : 'work');
			for (;;) {
				const { value, done: end } = await reader.read();
				if (end) break;
				parser.push(decoder.decode(value, { stream: true }));
			}
		} catch (err) {
			if (signal.aborted) break;
			void err;
		}
		if (signal.aborted) break;
		if (unreachable) {
			await sync.noteFailure();
			sync.wake(); /* an idle loop starts waiting out the step, then probes */
			continue;
		}
		await sleep(sync.eventBackoff.next(), signal);
	}
}
