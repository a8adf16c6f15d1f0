// Package shedws adapts github.com/coder/websocket connections to
// [shed.Conn], so a server built on that library can let hafeed shed them.
//
// It lives apart from package shed so that servers using another WebSocket
// library do not compile this one in.
package shedws
