// Package runtime keeps this host's servers in HAProxy's runtime API in step
// with the agent: each [Endpoint] finds the servers that point at this host,
// pushes the admin state to them and re-applies it after HAProxy restarts; a
// [Set] is the endpoints one configuration names, with the backend view they
// give together and the [SessionCloser] that sheds through them.
package runtime
