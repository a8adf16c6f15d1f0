// Package policy is hafeed's decision, as pure functions: it turns one
// sample's readings into an Observation (Observe), an observation into the
// weight and maxconn the host reports (PolicyConfig.Step), and the
// backend's view into how many connections to shed (RebalanceConfig.Step).
//
// It does no I/O and imports nothing of the daemon, so that the agent and
// the simulator in bench/sim run the same code.
package policy
