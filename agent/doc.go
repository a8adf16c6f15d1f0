// Package agent is the hafeed daemon: the sampling loop and the admin
// state, wired to the parts that each own their data. The sampler (package
// agent/sampler) reads the load (package metrics) and hands it to the
// policy (package agent/policy); the reply book serves the decision to HAProxy's agent
// checks; the admin state is persisted before it is served, pushed through
// HAProxy's runtime API (package agent/runtime) and changed on the control
// socket (package agent/control). Connections are moved by the drain's
// shedding jobs (package agent/shed) and by the rebalancer (package
// agent/rebalance). The configuration comes from package agent/config.
package agent
