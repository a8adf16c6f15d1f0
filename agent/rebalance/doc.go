// Package rebalance moves connections off a host that holds more than its
// fair share of its backend, as leastconn never does for long-lived
// sockets: once a second it reads the backend as HAProxy sees it, lets the
// policy (package agent/policy) decide how many connections to shed, and
// sheds them through the closer in effect (package agent/shed).
package rebalance
