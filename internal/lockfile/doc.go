// Package lockfile takes the flock that keeps two hafeed agents from
// sharing what only one may hold (the control socket, the state file),
// on a lock file opened without following a symbolic link.
package lockfile
