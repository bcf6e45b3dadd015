/* codec.js - Tagged JSON: how keys and values travel to the daemon.
 *
 * Values JSON cannot hold travel in the tagged forms of src/DESIGN.md
 * ("Tagged JSON"), inside values too (see encodeValue): Date {"~d": iso},
 * ArrayBuffer {"~b": b64url}, typed arrays and DataView {"~b": ...,
 * "type": "Uint8Array"} (a constructor name never contains "/"), Blob/File
 * {"~b": ..., "type": "<mime>"} (a MIME type always does, or is ""),
 * NaN/Infinity/-Infinity/-0 {"~n": "NaN"}, undefined {"~u": true}; a
 * property name of a plain object that starts with "~" gets one more "~"
 * so no user object is read as a tag. Keys use the daemon's key codec:
 * numbers (infinities as {"~n": ...}), strings, {"~d"}, {"~b"}, arrays.
 */

export function bytesToBase64url(bytes) {
	let text = '';
	for (let i = 0; i < bytes.length; i += 0x8000)
		text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
	return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function base64urlToBytes(text) {
	if (typeof text !== 'string' || !/^[A-Za-z0-9_-]*$/.test(text))
		throw new TypeError('idbmount: ~b must be base64url text');
	const std = text.replace(/-/g, '+').replace(/_/g, '/');
	const bin = atob(std + '='.repeat((4 - (std.length % 4)) % 4));
	const bytes = new Uint8Array(bin.length);
	for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
	return bytes;
}

function viewBytes(v) {
	if (v instanceof ArrayBuffer) return new Uint8Array(v);
	return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/* JSON text written already (a value encoded when it was put, see
 * journal.js): a request body or a push's value that goes out as it is. */
export class JsonText {
	constructor(text) {
		this.text = text;
	}
}

/* encodeKey(key) -> the tagged JSON form of a valid IndexedDB key. */
export function encodeKey(key) {
	if (typeof key === 'number') {
		if (Number.isNaN(key)) throw new TypeError('idbmount: NaN is not a key');
		if (key === Infinity || key === -Infinity) return { '~n': key > 0 ? 'Infinity' : '-Infinity' };
		return key === 0 ? 0 : key;
	}
	if (typeof key === 'string') return key;
	if (key instanceof Date) return { '~d': key.toISOString() };
	if (key instanceof ArrayBuffer || ArrayBuffer.isView(key)) return { '~b': bytesToBase64url(viewBytes(key)) };
	if (Array.isArray(key)) return key.map(encodeKey);
	throw new TypeError('idbmount: not a valid key: ' + String(key));
}

/* decodeKey(tagged) -> the IndexedDB key (binary keys as ArrayBuffer). */
export function decodeKey(tagged) {
	if (typeof tagged === 'number' || typeof tagged === 'string') return tagged;
	if (Array.isArray(tagged)) return tagged.map(decodeKey);
	if (tagged && typeof tagged === 'object') {
		const names = Object.keys(tagged);
		if (names.length === 1) {
			const text = tagged[names[0]];
			if (names[0] === '~n' && (text === 'Infinity' || text === '-Infinity'))
				return text === 'Infinity' ? Infinity : -Infinity;
			if (names[0] === '~d' && typeof text === 'string') {
				const date = new Date(text);
				if (!Number.isNaN(date.getTime())) return date;
			}
			if (names[0] === '~b') return base64urlToBytes(text).buffer;
		}
	}
	throw new TypeError('idbmount: not a tagged key: ' + JSON.stringify(tagged));
}

const TYPED_ARRAYS = {};
for (const name of ['Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array',
	'Uint32Array', 'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array', 'DataView']) {
	if (typeof globalThis[name] === 'function') TYPED_ARRAYS[name] = globalThis[name];
}

function isPlainObject(v) {
	const proto = Object.getPrototypeOf(v);
	return proto === Object.prototype || proto === null;
}

/* encodeValueSync(v, blobs) -> JSON-safe tagged value. Blobs cannot be read
 * synchronously: each one gets a placeholder object that is pushed to
 * `blobs` and filled in by encodeValue. */
export function encodeValueSync(v, blobs, depth) {
	if (depth > 1000) throw new TypeError('idbmount: value nested too deeply');
	if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
	if (typeof v === 'number') {
		if (Number.isNaN(v)) return { '~n': 'NaN' };
		if (v === Infinity || v === -Infinity) return { '~n': v > 0 ? 'Infinity' : '-Infinity' };
		if (Object.is(v, -0)) return { '~n': '-0' };
		return v;
	}
	if (v === undefined) return { '~u': true };
	if (typeof v !== 'object') throw new TypeError('idbmount: cannot sync a value of type ' + typeof v);
	if (v instanceof Date) return { '~d': Number.isNaN(v.getTime()) ? null : v.toISOString() };
	if (v instanceof ArrayBuffer) return { '~b': bytesToBase64url(new Uint8Array(v)) };
	if (ArrayBuffer.isView(v)) return { '~b': bytesToBase64url(viewBytes(v)), type: v.constructor.name };
	if (typeof Blob === 'function' && v instanceof Blob) {
		const holder = { '~b': '', type: v.type };
		blobs.push({ blob: v, holder });
		return holder;
	}
	if (Array.isArray(v)) {
		const out = new Array(v.length);
		for (let i = 0; i < v.length; i++) out[i] = i in v ? encodeValueSync(v[i], blobs, depth + 1) : null;
		return out;
	}
	if (!isPlainObject(v)) throw new TypeError('idbmount: cannot sync a ' + (v.constructor?.name || 'object') + ' value');
	const out = {};
	for (const name of Object.keys(v)) {
		if (v[name] === undefined) continue; /* as JSON.stringify: an absent property */
		out[name.startsWith('~') ? '~' + name : name] = encodeValueSync(v[name], blobs, depth + 1);
	}
	return out;
}

/* Whether `v` holds anything JSON.stringify would not write as the tagged
 * form has it: a tag, a Blob, a name starting with "~", undefined, a
 * number JSON has no text for, or what cannot be synced at all. */
function needsTags(v, depth) {
	if (v === null || typeof v === 'boolean' || typeof v === 'string') return false;
	if (typeof v === 'number') return !Number.isFinite(v) || Object.is(v, -0);
	if (typeof v !== 'object' || depth > 1000) return true;
	if (Array.isArray(v)) {
		for (let i = 0; i < v.length; i++) if (!(i in v) || needsTags(v[i], depth + 1)) return true;
		return false;
	}
	if (!isPlainObject(v)) return true;
	for (const name of Object.keys(v)) if (name.startsWith('~') || needsTags(v[name], depth + 1)) return true;
	return false;
}

/* encodeValueText(v) -> the tagged form of `v` as JSON text, or null when
 * it holds Blobs (they are read asynchronously: encodeValue). A value
 * that needs no tag (most) is written by JSON.stringify as it is, without
 * the copy encodeValueSync makes: this runs in every captured put(). */
export function encodeValueText(v) {
	if (!needsTags(v, 0)) return JSON.stringify(v);
	const blobs = [];
	const out = encodeValueSync(v, blobs, 0);
	return blobs.length ? null : JSON.stringify(out);
}

/* encodeValue(v) -> Promise of the tagged JSON value (async for Blobs). */
export async function encodeValue(v) {
	const blobs = [];
	const out = encodeValueSync(v, blobs, 0);
	for (const { blob, holder } of blobs) holder['~b'] = bytesToBase64url(new Uint8Array(await blob.arrayBuffer()));
	return out;
}

/* decodeValue(tagged) -> the structured value encodeValue was given. */
export function decodeValue(t) {
	if (t === null || typeof t !== 'object') return t;
	if (Array.isArray(t)) return t.map(decodeValue);
	const names = Object.keys(t);
	if (names.length === 1 || (names.length === 2 && '~b' in t && typeof t.type === 'string')) {
		const text = t[names[0]];
		switch (names.length === 2 ? '~b' : names[0]) {
			case '~d':
				if (text === null) return new Date(NaN);
				if (typeof text === 'string') return new Date(text);
				break;
			case '~n':
				if (text === 'NaN') return NaN;
				if (text === 'Infinity') return Infinity;
				if (text === '-Infinity') return -Infinity;
				if (text === '-0') return -0;
				break;
			case '~u':
				return undefined;
			case '~b': {
				const bytes = base64urlToBytes(t['~b']);
				if (names.length === 1) return bytes.buffer;
				const ctor = TYPED_ARRAYS[t.type];
				if (ctor === DataView) return new DataView(bytes.buffer);
				if (ctor) return new ctor(bytes.buffer, 0, bytes.byteLength / ctor.BYTES_PER_ELEMENT);
				return new Blob([bytes], { type: t.type });
			}
		}
	}
	const out = {};
	for (const name of names) out[name.startsWith('~~') ? name.slice(1) : name] = decodeValue(t[name]);
	return out;
}
