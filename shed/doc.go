// Package shed lets a Go WebSocket server hand live connections back to
// HAProxy when hafeed asks it to, so that clients reconnect onto other hosts.
//
// A server adds each accepted connection to a [Registry] and removes it when
// the connection ends. hafeed calls the hook served by [Handler] to close a
// number of them; each closed connection is told to reconnect elsewhere.
// Package [github.com/hafeed/hafeed/shed/shedws] adapts a
// github.com/coder/websocket connection; any other library can be adapted
// with [ConnFunc]. An adapter closes with [CloseCode] (1012, Service Restart)
// and [CloseReason], which cooperating clients treat as "reconnect now".
//
// # Which connections go
//
// [Registry.Shed] closes the oldest connections first. A client that has just
// been moved here by an earlier shed on another host is the youngest, so it is
// not moved again at once: rebalancing does not bounce the same clients back
// and forth, and over time every client pays for a move about as often as any
// other.
//
// # The hook protocol, version 1
//
// hafeed's agent is the client of this protocol; it is a contract between the
// two, and an application may implement the server side in any language.
// docs/SHED-HOOK.md in the repository specifies it on its own, with what the
// agent sends and when.
//
// The hook is one URL on a local listener, by convention the path
// /hafeed/shed. It has no authentication of its own: serve it on a loopback
// or otherwise private listener.
//
// Shedding. The agent sends
//
//	POST /hafeed/shed HTTP/1.1
//	Content-Type: application/json
//
//	{"count": 25, "reason": "rebalance"}
//
// where
//
//   - count (required): a JSON integer from 0 to [MaxCount], the number of
//     connections to close. A count larger than the number of live
//     connections closes them all. 0 closes none and only reports.
//   - reason (required): "drain" when the host is being emptied, "rebalance"
//     when it only carries more than its share. It is informational: both close
//     connections the same way.
//   - Unknown fields are ignored, so later versions may add optional ones.
//   - Content-Type must be application/json (parameters such as charset are
//     allowed). This forces a CORS preflight, so a web page in a browser on the
//     same host cannot call the hook.
//   - The body is at most [MaxBodyBytes] bytes and holds exactly one JSON
//     object.
//
// The server chooses up to count connections, stops counting them as live,
// and tells each to close. It answers once every chosen connection has been
// told, or after [ShedTimeout], whichever comes first:
//
//	HTTP/1.1 200 OK
//	Content-Type: application/json
//
//	{"closed": 25, "remaining": 975}
//
// where
//
//   - closed: connections told to close by this request, including those still
//     finishing their close handshake when the answer was sent; a connection
//     that turned out to be gone already is not counted.
//   - remaining: live connections left after this request.
//
// Counting. A GET (or HEAD) of the same URL answers 200 with
//
//	{"connections": 975}
//
// Errors. Every error answer has a JSON body {"error": "text"} saying what was
// wrong:
//
//   - 400 Bad Request: the body is not one JSON object, count is missing, not
//     an integer, negative or above MaxCount, or reason is missing or unknown.
//   - 405 Method Not Allowed: any method other than GET, HEAD and POST; the
//     Allow header lists those three.
//   - 413 Request Entity Too Large: the body is longer than MaxBodyBytes.
//   - 415 Unsupported Media Type: a POST whose Content-Type is not
//     application/json.
//
// A shed request is not idempotent: repeating it closes more connections. The
// agent must not retry a POST that may have reached the server; it sends its
// next request from fresh counts instead.
package shed
