// Package shed lets a Go WebSocket server hand live connections back to
// HAProxy when hafeed asks it to, so that clients reconnect onto other hosts.
// It implements the server side of hafeed's shed hook, version 1, which
// [docs/SHED-HOOK.md] in the repository specifies for any language.
//
// A server adds each accepted connection to a [Registry] and removes it when
// the connection ends. hafeed calls the hook served by [Handler] to close a
// number of them; each closed connection is told to reconnect elsewhere.
// Mount the handler at /hafeed/shed on a listener of its own on loopback: the
// hook has no authentication. Package [github.com/hafeed/hafeed/shed/shedws]
// adapts a github.com/coder/websocket connection; any other library can be
// adapted with [ConnFunc]. An adapter closes with [CloseCode] (1012, Service
// Restart) and [CloseReason], which cooperating clients treat as "reconnect
// now".
//
// [Registry.Shed] closes the oldest connections first, as the protocol asks.
// [Handler] enforces the protocol's limits, [MaxCount] and [MaxBodyBytes], and
// answers within [ShedTimeout].
//
// [docs/SHED-HOOK.md]: https://github.com/hafeed/hafeed/blob/main/docs/SHED-HOOK.md
package shed
