'use strict';
// Clients that behave as hafeed expects: a close with 1012 (Service
// Restart) means "reconnect now", so they reconnect at once, with a little
// jitter, and HAProxy sends them to another host; any other close waits a
// second first.
//
//   node client.js 127.0.0.1:80 60
//
// opens 60 clients to ws://127.0.0.1:80/. Each line "stats" on stdin is
// answered with one JSON line of counts on stdout (the e2e tests read it).

const readline = require('node:readline');
const { WebSocket } = require('ws');

const [addr, n] = [process.argv[2], Number(process.argv[3] || 1)];
if (!addr || !Number.isInteger(n) || n < 1) {
  console.error('usage: node client.js HOST:PORT [CLIENTS]');
  process.exit(2);
}
const SHED_CODE = 1012;

const stats = { opens: 0, shed: 0, otherCloses: 0, errors: 0, moved: 0, backToSame: 0 };
const clients = [];

function connect(c) {
  const ws = new WebSocket(`ws://${addr}/`);
  c.ws = ws;
  ws.on('open', () => { stats.opens++; });
  ws.on('message', (data) => {
    let msg;
    try { msg = JSON.parse(data); } catch { return; }
    if (!msg.hello) return;
    c.host = msg.hello;
    if (c.shedBy) {
      if (c.host === c.shedBy) stats.backToSame++; else stats.moved++;
      c.shedBy = null;
    }
  });
  ws.on('error', () => { stats.errors++; });
  ws.on('close', (code) => {
    const from = c.host;
    c.host = null;
    if (code === SHED_CODE) {
      stats.shed++;
      c.shedBy = from;
      setTimeout(() => connect(c), Math.random() * 100);
    } else {
      stats.otherCloses++;
      setTimeout(() => connect(c), 1000);
    }
  });
}

for (let i = 0; i < n; i++) {
  const c = { host: null, shedBy: null };
  clients.push(c);
  connect(c);
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() !== 'stats') return;
  const perHost = {};
  let connected = 0;
  for (const c of clients) {
    if (!c.host) continue;
    connected++;
    perHost[c.host] = (perHost[c.host] || 0) + 1;
  }
  process.stdout.write(JSON.stringify({ ...stats, connected, perHost }) + '\n');
}).on('close', () => process.exit(0));
