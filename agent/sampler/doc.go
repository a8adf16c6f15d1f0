// Package sampler reads the host's load: it builds one source for each
// load signal the configuration names (package metrics reads them), counts
// connections within their CPU budget, and runs the policy (package
// agent/policy) on every sample. A [Sample] is the domain's view of one
// reading; package agent/control maps it to the wire format of
// `hafeed status --json`.
package sampler
