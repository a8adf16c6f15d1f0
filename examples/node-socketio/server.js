'use strict';
// A Socket.IO echo server that hands its clients back to HAProxy when
// hafeed asks: hafeed drain --wait --shed-rate R, or rebalancing, POSTs to
// the hook, and the oldest clients get the event "hafeed:shed"
// ({code: 1012, reason}) and are disconnected; client.js reconnects them,
// through HAProxy, onto another host.
//
//   LISTEN=0.0.0.0:8080 HOOK_LISTEN=127.0.0.1:8081 node server.js
//
// and in hafeed.yaml: shed: {via: hook, hook_url: http://127.0.0.1:8081/hafeed/shed}

const http = require('node:http');
const os = require('node:os');
const { Server } = require('socket.io');
const { Registry, shedHook } = require('./hook');

const LISTEN = process.env.LISTEN || '0.0.0.0:8080';
// The hook has no authentication: keep it on loopback, never behind HAProxy.
const HOOK_LISTEN = process.env.HOOK_LISTEN || '127.0.0.1:8081';
const NAME = process.env.NAME || os.hostname();

const SHED_EVENT = 'hafeed:shed';
const SHED_MESSAGE = { code: 1012, reason: 'hafeed: shedding, reconnect' };

const live = new Registry();

// shedSocket tells one client to reconnect elsewhere and settles once its
// connection is closed; it rejects when the client was gone already.
function shedSocket(socket) {
  return new Promise((resolve, reject) => {
    if (!socket.connected) {
      reject(new Error('already disconnected'));
      return;
    }
    socket.conn.once('close', () => resolve());
    socket.emit(SHED_EVENT, SHED_MESSAGE);
    socket.disconnect(true); // sent after the event; closes the connection
  });
}

const server = http.createServer();
// WebSocket only: Socket.IO's long-polling needs sticky sessions, which a
// leastconn backend does not give.
const io = new Server(server, { transports: ['websocket'] });
io.on('connection', (socket) => {
  const remove = live.add(socket, () => shedSocket(socket));
  socket.on('disconnect', remove);
  socket.on('echo', (msg, ack) => { if (typeof ack === 'function') ack(msg); });
  socket.emit('hello', NAME);
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
  () => console.log(`${NAME}: Socket.IO on ${LISTEN}, shed hook on http://${HOOK_LISTEN}/hafeed/shed`),
  (err) => {
    console.error(`${NAME}: ${err.message}`);
    process.exit(1);
  },
);

process.on('SIGTERM', () => {
  hook.close();
  io.close(() => process.exit(0));
});
