'use strict';
// A WebSocket echo server (ws) that hands its sockets back to HAProxy when
// hafeed asks: hafeed drain --wait --shed-rate R, or rebalancing, POSTs to
// the hook, and the oldest sockets are closed with 1012 (Service Restart),
// which the clients take as "reconnect now" (client.js).
//
//   LISTEN=0.0.0.0:8080 HOOK_LISTEN=127.0.0.1:8081 node server.js
//
// and in hafeed.yaml: shed: {via: hook, hook_url: http://127.0.0.1:8081/hafeed/shed}

const http = require('node:http');
const os = require('node:os');
const { WebSocketServer, WebSocket } = require('ws');
const { Registry, shedHook } = require('./hook');

const LISTEN = process.env.LISTEN || '0.0.0.0:8080';
// The hook has no authentication: keep it on loopback, never behind HAProxy.
const HOOK_LISTEN = process.env.HOOK_LISTEN || '127.0.0.1:8081';
const NAME = process.env.NAME || os.hostname();

const CLOSE_CODE = 1012;
const CLOSE_REASON = 'hafeed: shedding, reconnect';

const live = new Registry();

// closeForShed tells one socket to reconnect elsewhere and settles once the
// close handshake is over; it rejects when the socket was closing already.
function closeForShed(ws) {
  return new Promise((resolve, reject) => {
    if (ws.readyState !== WebSocket.OPEN) {
      reject(new Error('already closing'));
      return;
    }
    ws.once('close', () => resolve());
    ws.close(CLOSE_CODE, CLOSE_REASON);
  });
}

const server = http.createServer((req, res) => {
  res.writeHead(426, { 'Content-Type': 'text/plain' });
  res.end('WebSocket only\n');
});
const wss = new WebSocketServer({ server });
wss.on('connection', (ws) => {
  const remove = live.add(ws, () => closeForShed(ws));
  ws.on('close', remove);
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.send(JSON.stringify({ hello: NAME }));
});

const hook = http.createServer(shedHook(live));

function listen(srv, addr) {
  const i = addr.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(Number(addr.slice(i + 1)), addr.slice(0, i).replace(/^\[|\]$/g, ''), resolve);
  });
}

Promise.all([listen(server, LISTEN), listen(hook, HOOK_LISTEN)]).then(
  () => console.log(`${NAME}: WebSockets on ${LISTEN}, shed hook on http://${HOOK_LISTEN}/hafeed/shed`),
  (err) => {
    console.error(`${NAME}: ${err.message}`);
    process.exit(1);
  },
);

process.on('SIGTERM', () => {
  hook.close();
  for (const ws of wss.clients) ws.terminate();
  server.close(() => process.exit(0));
});
