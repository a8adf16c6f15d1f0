// Package testutil holds what hafeed's tests share: waits that poll a
// condition until it holds or a deadline passes, and receive from a channel
// with a deadline, so that no test waits without a bound or sleeps in place
// of synchronisation; free loopback ports; and temporary directories short
// enough for Unix sockets. The benchmarks' farms take their free ports here
// too.
package testutil
