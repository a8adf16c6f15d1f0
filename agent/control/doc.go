// Package control is the protocol of hafeed's control socket, the local
// Unix socket that `hafeed drain`, `ready`, `maint` and `status` talk to the
// running agent through: one JSON Request line, one JSON Response line. It
// holds the client (Call), the server (Listen, Server.Run) and the status
// types the agent reports.
package control
