// Package wstest runs WebSocket echo servers and populations of long-lived
// WebSocket clients, for hafeed's end-to-end tests and balance benchmarks.
//
// A [Server] echoes every message and serves hafeed's shed hook; a
// [Population] keeps many clients connected through HAProxy, checks that
// every message comes back in order, and reconnects the way a cooperating
// client does when a server sheds it.
package wstest
