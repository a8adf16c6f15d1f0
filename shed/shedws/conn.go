package shedws

import (
	"context"

	"github.com/coder/websocket"

	"github.com/hafeed/hafeed/shed"
)

// Conn adapts c to shed.Conn: shedding it closes c with status
// shed.CloseCode (1012, Service Restart) and reason shed.CloseReason.
func Conn(c *websocket.Conn) shed.Conn {
	return conn{ws: c}
}

type conn struct {
	ws *websocket.Conn
}

// Shed runs the close handshake and returns when it completes or ctx ends.
// The handshake goes on after ctx ends; coder/websocket bounds it to about
// ten seconds and then drops the connection.
func (c conn) Shed(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- c.ws.Close(shed.CloseCode, shed.CloseReason) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Interface guard.
var _ shed.Conn = conn{}
