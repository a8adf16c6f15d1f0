// Package testutil holds the waits hafeed's tests share: poll a condition
// until it holds or a deadline passes, and receive from a channel with a
// deadline, so that no test waits without a bound or sleeps in place of
// synchronisation.
package testutil
