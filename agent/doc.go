// Package agent is the hafeed daemon. It wires the stages of the data:
// the sampler reads the load (package metrics) and hands it to the policy
// (package agent/policy); the reply book serves the decision to HAProxy's
// agent checks; the admin state is persisted, pushed through HAProxy's
// runtime API and served on the control socket (package agent/control);
// shedding and rebalancing close connections to move them (shed.go). The
// configuration comes from package agent/config.
package agent
