// Package farm runs a WebSocket farm of real processes on loopback: HAProxy
// in master-worker mode, backends that echo and hash every message, one
// hafeed per backend, and a process of reconnecting clients. The load
// benchmark (bench/balance) measures it and the demo (demo/) shows it live.
//
// The backends and the clients are roles of the calling program: it
// re-executes itself with the role in its environment, so its main must
// call RunRole first. Every process runs under one supervise.Supervisor and
// is stopped, process group included, when the farm or its Env stops.
package farm
