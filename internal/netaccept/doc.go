// Package netaccept accepts connections for hafeed's servers (the
// agent-check port, the control socket) the way a daemon must: an error
// such as running out of file descriptors delays the next accept instead
// of stopping the server.
package netaccept
