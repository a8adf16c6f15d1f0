// Package haproxy speaks HAProxy's side protocols for hafeed: the
// agent-check server that HAProxy polls and the reply line it understands,
// and a small client for the runtime API (stats socket) that pushes admin
// changes, reads the backend's state and closes sessions.
package haproxy
