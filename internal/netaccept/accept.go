package netaccept

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/rs/zerolog"
)

// The back-off after failed accepts doubles from minBackoff to maxBackoff.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// Acceptor accepts from Listener, backing off after errors. One goroutine
// owns it.
type Acceptor struct {
	Listener net.Listener
	Log      zerolog.Logger
	// What names the connections in the log, e.g. "agent-check connection".
	What string

	backoff time.Duration
}

// Accept returns the next connection. It returns nil, nil once ctx is done
// and the listener's error once the listener is closed; other errors are
// logged and retried after a back-off.
func (a *Acceptor) Accept(ctx context.Context) (net.Conn, error) {
	for {
		conn, err := a.Listener.Accept()
		switch {
		case err == nil:
			a.backoff = 0
			return conn, nil
		case ctx.Err() != nil:
			return nil, nil
		case errors.Is(err, net.ErrClosed):
			return nil, err
		}
		a.backoff = min(max(2*a.backoff, minBackoff), maxBackoff)
		a.Log.Warn().Err(err).Dur("retry_in", a.backoff).Msg("accepting " + a.What)
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(a.backoff):
		}
	}
}
