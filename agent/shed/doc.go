// Package shed closes this host's connections at a bounded rate so that
// their clients reconnect elsewhere: the [Closer] ways to close them (the
// application's shed hook here, HAProxy's runtime API in package
// agent/runtime), the drain's rate-limited [Job] and the [Runner] that runs
// one at a time, the connection counter a job stops by, and the [Tally] of
// what was closed. The hook protocol is specified in docs/SHED-HOOK.md.
package shed
