// Package haproxy speaks HAProxy's side protocols for hafeed: the agent-check
// server that HAProxy polls, and the reply line it understands.
package haproxy
