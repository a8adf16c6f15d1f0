// Package termsafe makes text that came from elsewhere — a runtime API
// reply from HAProxy, an application's load endpoint — safe to print on a
// terminal: escape sequences and control characters are removed, so that
// an endpoint cannot retitle the window, clear the screen, move the cursor
// or hide text with them.
package termsafe
