'use strict';
// Socket.IO clients that behave as hafeed expects. A server-side
// disconnect ("io server disconnect") is final for Socket.IO's client, so
// a client that was told "hafeed:shed" first reconnects itself at once,
// with a little jitter, and HAProxy sends it to another host. Other drops
// are left to Socket.IO's own reconnection.
//
//   node client.js 127.0.0.1:80 60
//
// opens 60 clients to http://127.0.0.1:80/ over WebSocket. Each line
// "stats" on stdin is answered with one JSON line of counts on stdout (the
// e2e tests read it).

const readline = require('node:readline');
const { io } = require('socket.io-client');

const [addr, n] = [process.argv[2], Number(process.argv[3] || 1)];
if (!addr || !Number.isInteger(n) || n < 1) {
  console.error('usage: node client.js HOST:PORT [CLIENTS]');
  process.exit(2);
}

const stats = { opens: 0, shed: 0, otherCloses: 0, errors: 0, moved: 0, backToSame: 0 };
const clients = [];

for (let i = 0; i < n; i++) {
  // forceNew: a connection of its own per client, as separate browsers have.
  const socket = io(`http://${addr}/`, { transports: ['websocket'], forceNew: true, reconnectionDelay: 1000 });
  const c = { socket, host: null, shedBy: null, told: false };
  clients.push(c);
  socket.on('connect', () => { stats.opens++; });
  socket.on('hello', (host) => {
    c.host = host;
    if (c.shedBy) {
      if (c.host === c.shedBy) stats.backToSame++; else stats.moved++;
      c.shedBy = null;
    }
  });
  socket.on('hafeed:shed', () => { c.told = true; });
  socket.on('connect_error', () => { stats.errors++; });
  socket.on('disconnect', (reason) => {
    const from = c.host;
    c.host = null;
    const told = c.told;
    c.told = false;
    if (told && reason === 'io server disconnect') {
      stats.shed++;
      c.shedBy = from;
      // After "io server disconnect" Socket.IO does not reconnect by itself.
      setTimeout(() => socket.connect(), Math.random() * 100);
    } else {
      stats.otherCloses++; // Socket.IO reconnects by itself
    }
  });
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
