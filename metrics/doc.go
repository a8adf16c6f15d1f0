// Package metrics holds hafeed's load samplers, one source per file: each
// reads one kernel interface, with its root path injectable and its parsing
// done by pure functions that tests feed literal input.
package metrics
