#!/usr/bin/env node
// Example: upload an encoded memory stream as an HTTP request body.
//
//   client   encodeRounds() turns rounds of a changing image into a RAM record
//            stream (no stream classes needed: an async generator of byte
//            chunks) and pipes it into a chunked POST request.
//   server   a node:http server that pipes each request body into an
//            XbzrleDecodeStream (pages kept in a MemoryPageStore) and answers
//            with JSON: the blocks it rebuilt, each with a SHA-256, and the
//            decoder's statistics; a body that does not decode gets a 400 with
//            the error's code and byte offset.
//
// The client compares the server's SHA-256 with its own final image, then
// uploads a body cut short (400 ERR_RAM_TRUNCATED) and one that is not a
// record stream at all (400, answered at once, without reading the rest).
//
// Run:   npm run build && node examples/http-upload.mjs [--size MiB] [--rounds N]
// Exit:  0 when the server rebuilt the image and refused both bad bodies, 1 otherwise.
import { createHash } from 'node:crypto';
import { createServer, request } from 'node:http';
import { finished, pipeline } from 'node:stream/promises';
import { exampleOptions } from './args.mjs';
import { MemoryPageStore, XbzrleDecodeStream, encodeRounds } from 'xbzrle';

const { values, usageError } = exampleOptions('usage: node examples/http-upload.mjs [--size MiB] [--rounds N]', {
  size: { type: 'string', default: '8' },
  rounds: { type: 'string', default: '4' },
});
const PAGE = 4096;
const SIZE = Number(values.size) * 1048576;
const ROUNDS = Number(values.rounds);
if (!(SIZE > 0 && SIZE % PAGE === 0) || !(ROUNDS >= 1)) usageError('--size must be a positive number of MiB (whole pages), --rounds ≥ 1');
const BLOCK = 'pc.ram';
/** @param {Uint8Array} bytes */
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

// ---- server: request body -> XbzrleDecodeStream -> JSON ----------------------
const server = createServer(async (req, res) => {
  /**
   * @param {number} status
   * @param {object} body
   */
  const reply = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  if (req.method !== 'POST' || req.url !== '/upload') return reply(404, { error: 'POST /upload' });
  const store = new MemoryPageStore();
  const dec = new XbzrleDecodeStream({ store, emitPages: false });
  // An aborted upload must fail the decoder (pipe() does not forward errors).
  req.on('error', (err) => dec.destroy(err));
  req.on('close', () => req.complete || dec.destroy(new Error('upload aborted')));
  req.pipe(dec);
  try {
    await finished(dec.resume()); // resume: nothing is read from the decoder, but its end must come
  } catch (err) {
    // Bad data: stop decoding and answer 400 at once. When the body is not all in yet,
    // close the connection after the answer (Connection: close) instead of reading the rest.
    req.unpipe(dec);
    if (!req.complete) res.setHeader('connection', 'close');
    const { message, code, offset } = /** @type {import('xbzrle').XbzrleError} */ (err);
    return reply(400, { error: message, code, offset });
  }
  const blocks = (dec.blocks ?? []).map(({ id, length }) => ({ id, length, sha256: sha256(store.read(id)) }));
  reply(200, { blocks, stats: dec.stats.toJSON() });
});
await /** @type {Promise<void>} */ (new Promise((resolve) => server.listen(0, '127.0.0.1', resolve)));
const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());

/**
 * POSTs `body` (an async iterable of bytes) to /upload; resolves to { status, json }.
 * @param {AsyncIterable<Uint8Array> | Iterable<Uint8Array>} body
 * @returns {Promise<{ status: number | undefined, json: { blocks?: { id: string, length: number, sha256: string }[], stats?: import('xbzrle').XbzrleStatsJSON, error?: string, code?: string, offset?: number } }>}
 */
async function upload(body) {
  const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/upload', headers: { 'content-type': 'application/octet-stream' } });
  /** @type {Promise<import('node:http').IncomingMessage>} */
  const response = new Promise((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', reject);
  });
  const sending = pipeline(body, req); // chunked transfer encoding: the length is not known in advance
  // A server that refuses a body early answers before reading all of it and closes the
  // connection: its answer is what counts, so sending may then fail without an error here.
  sending.catch(() => {});
  const res = await response;
  let text = '';
  for await (const chunk of res) text += chunk;
  await sending.catch(() => {});
  return { status: res.statusCode, json: JSON.parse(text) };
}

// ---- client: rounds of a changing image, encoded as an async iterable --------
let seed = 0x4711; // deterministic pseudo-random numbers (mulberry32)
const rand = () => {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const image = new Uint8Array(SIZE);
for (let i = SIZE / 4; i < SIZE; i++) image[i] = (rand() * 256) | 0;

/** Each round: change the image a little, then yield it as one array of records (encodeRounds syncs after each). */
async function* rounds() {
  for (let round = 1; round <= ROUNDS; round++) {
    if (round > 1) {
      for (let off = 0; off < SIZE; off += 4096 * 3) image[off + 100] ^= 0xff; // a byte in every third page
      for (let k = 0; k < 50; k++) { // 256-byte patches
        const at = Math.floor(rand() * (SIZE - 256));
        image.fill(k + 1, at, at + 256);
      }
    }
    const records = [];
    // Copies: `image` changes while the encoder may still hold earlier records.
    for (let off = 0; off < SIZE; off += 1 << 20) records.push({ block: BLOCK, offset: off, data: image.slice(off, off + (1 << 20)) });
    yield records;
  }
}

/** @type {import('xbzrle').XbzrleStats | undefined} */
let encStats;
let sent = 0;
/** The encoder's output chunks, counted; keeps encodeRounds' return value (the encoder's stats). */
async function* body() {
  const it = encodeRounds(rounds(), { blocks: [{ id: BLOCK, length: SIZE }] });
  for (let r = await it.next(); ; r = await it.next()) {
    if (r.done) {
      encStats = r.value;
      return;
    }
    sent += r.value.length;
    yield r.value;
  }
}

let failed = false;
/**
 * @param {boolean} ok
 * @param {string} what
 */
const check = (ok, what) => {
  console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failed = true;
};
try {
  console.log(`http-upload: ${SIZE / 1048576} MiB image, ${ROUNDS} rounds, POST http://127.0.0.1:${port}/upload`);
  const started = performance.now();
  const { status, json } = await upload(body());
  const ms = performance.now() - started;
  const s = /** @type {import('xbzrle').XbzrleStats} */ (encStats).toJSON();
  console.log(
    `  client sent ${(sent / 1048576).toFixed(2)} MiB for ${((SIZE * ROUNDS) / 1048576).toFixed(0)} MiB of pages in ${ms.toFixed(0)} ms ` +
      `(PAGE ${s.records.PAGE}, ZERO ${s.records.ZERO}, XBZRLE ${s.records.XBZRLE}, unchanged ${s.ram.skipped})`,
  );
  console.log(`  server answered ${status}: ${JSON.stringify({ blocks: json.blocks, records: json.stats?.records, transferred: json.stats?.ram.transferred })}`);
  check(status === 200, 'upload accepted (200)');
  check(json.stats?.ram.transferred === sent, 'server decoded every byte the client sent');
  const block = json.blocks?.find((b) => b.id === BLOCK);
  check(block?.sha256 === sha256(image), `server image sha256 ${block?.sha256?.slice(0, 16)}… equals the client's final image`);

  // A body cut short: every byte up to the middle of the stream, then the end.
  const whole = [];
  for await (const chunk of encodeRounds([[{ block: BLOCK, offset: 0, data: image.subarray(0, 1 << 20) }]], { blocks: [{ id: BLOCK, length: SIZE }] })) whole.push(chunk);
  const bytes = Buffer.concat(whole);
  const cut = await upload([bytes.subarray(0, bytes.length >> 1)]);
  console.log(`  truncated body (${bytes.length >> 1} of ${bytes.length} bytes): server answered ${cut.status} ${cut.json.code}: ${cut.json.error}`);
  check(cut.status === 400 && cut.json.code === 'ERR_RAM_TRUNCATED', 'truncated upload refused with 400 ERR_RAM_TRUNCATED');

  // A body that is not a RAM record stream at all: refused at its first record,
  // without waiting for the rest of the upload.
   const junk = await upload((function* () {
    for (let i = 0; i < 64; i++) yield Buffer.alloc(1 << 20, 0xff);
  })());
  console.log(`  64 MiB of 0xff bytes: server answered ${junk.status} ${junk.json.code}: ${junk.json.error}`);
  check(junk.status === 400 && junk.json.offset === 0, 'junk upload refused at its first record with 400');
} finally {
  server.close();
  server.closeAllConnections();
}
console.log(failed ? 'FAILED' : 'verified: server rebuilt the image; bad uploads refused: OK');
process.exitCode = failed ? 1 : 0;
