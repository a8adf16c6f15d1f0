// Package cmd is hafeed's command line: it parses flags, loads the
// configuration and hands off to the agent package or the control socket.
package cmd
