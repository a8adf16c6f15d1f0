'use strict';
// hafeed's shed hook, protocol version 1 (docs/SHED-HOOK.md), for any Node
// WebSocket server: a registry of live connections in arrival order and
// the HTTP handler hafeed's agent calls to close some of them.

const MAX_COUNT = 1 << 20;
const MAX_BODY_BYTES = 4096;
const SHED_TIMEOUT_MS = 5000;
const REASONS = ['drain', 'rebalance'];

// Registry tracks live connections, oldest first. add() takes a function
// that tells the connection to go (a close with 1012) and returns a promise
// that settles once the peer has been told; it rejects when the connection
// was gone already.
class Registry {
  constructor() {
    this.live = new Map(); // key -> shed function; a Map keeps insertion order
  }

  add(key, shed) {
    this.live.set(key, shed);
    return () => this.live.delete(key);
  }

  get size() {
    return this.live.size;
  }

  // shed tells up to n of the oldest connections to go and resolves with
  // how many were told: those still closing after timeoutMs count, those
  // that were gone already do not.
  async shed(n, timeoutMs = SHED_TIMEOUT_MS) {
    const victims = [];
    for (const [key, fn] of this.live) {
      if (victims.length >= n) break;
      victims.push(fn);
      this.live.delete(key);
    }
    let gone = 0;
    let timer;
    const all = Promise.all(victims.map((fn) => Promise.resolve().then(fn).catch(() => { gone++; })));
    const timeout = new Promise((resolve) => { timer = setTimeout(resolve, timeoutMs); });
    await Promise.race([all, timeout]);
    clearTimeout(timer);
    return victims.length - gone;
  }
}

function send(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
  res.end(JSON.stringify(body) + '\n');
}

// parse checks a shed request body and returns {count, reason} or throws
// with the text of a 400 answer.
function parse(text) {
  let body;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw new Error(text.trim() === '' ? 'empty body: send a JSON object such as {"count": 10, "reason": "rebalance"}' : `decoding shed request: ${err.message}`);
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new Error('body is not a JSON object');
  }
  const { count, reason } = body;
  if (count === undefined) throw new Error('count is missing');
  if (!Number.isInteger(count) || count < 0 || count > MAX_COUNT) {
    throw new Error(`count ${JSON.stringify(count)} must be an integer from 0 to ${MAX_COUNT}`);
  }
  if (reason === undefined) throw new Error('reason is missing: use "drain" or "rebalance"');
  if (!REASONS.includes(reason)) throw new Error(`reason ${JSON.stringify(reason)} unknown: use "drain" or "rebalance"`);
  return { count, reason };
}

// shedHook is the request handler of the hook URL for registry.
function shedHook(registry) {
  return (req, res) => {
    if (req.method === 'GET' || req.method === 'HEAD') {
      send(res, 200, { connections: registry.size });
      return;
    }
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'GET, HEAD, POST');
      send(res, 405, { error: `method ${req.method} not allowed: use GET to count or POST to shed` });
      return;
    }
    const type = (req.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
    if (type !== 'application/json') {
      send(res, 415, { error: 'content type must be application/json' });
      return;
    }
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on('end', async () => {
      if (size > MAX_BODY_BYTES) {
        send(res, 413, { error: `body longer than ${MAX_BODY_BYTES} bytes` });
        return;
      }
      let request;
      try {
        request = parse(Buffer.concat(chunks).toString('utf8'));
      } catch (err) {
        send(res, 400, { error: err.message });
        return;
      }
      const closed = await registry.shed(request.count);
      console.log(`shed ${closed} of ${request.count} asked (${request.reason}), ${registry.size} left`);
      send(res, 200, { closed, remaining: registry.size });
    });
  };
}

module.exports = { Registry, shedHook, MAX_COUNT, MAX_BODY_BYTES, SHED_TIMEOUT_MS };
