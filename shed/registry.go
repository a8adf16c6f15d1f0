package shed

import (
	"context"
	"errors"
	"sync"
)

// CloseCode is the WebSocket close status an adapter sends when shedding:
// 1012, Service Restart, which tells a client to reconnect.
const CloseCode = 1012

// CloseReason is the WebSocket close reason an adapter sends when shedding.
const CloseReason = "hafeed: shedding, reconnect"

// Conn is a live connection that can be told to reconnect elsewhere.
type Conn interface {
	// Shed closes the connection in a way that tells the peer to reconnect,
	// such as a WebSocket close with CloseCode. It returns once the peer has
	// been told, or with ctx's error when ctx ends first; it returns another
	// error only when the peer could not be told, e.g. the connection was
	// already gone.
	Shed(ctx context.Context) error
}

// ConnFunc adapts a function to Conn, for WebSocket libraries without an
// adapter in this module.
type ConnFunc func(ctx context.Context) error

// Shed calls f.
func (f ConnFunc) Shed(ctx context.Context) error { return f(ctx) }

// Registry tracks the live connections of a server in the order they arrived.
// The zero value is empty and ready to use; a Registry must not be copied
// after first use.
type Registry struct {
	mu sync.Mutex
	// head is the oldest entry and tail the youngest.
	head, tail *entry
	n          int
}

// entry links one connection into the registry's arrival-ordered list.
type entry struct {
	conn       Conn
	prev, next *entry
	linked     bool
}

// Add starts tracking c and returns the function that stops tracking it.
// Call remove when the connection ends for any reason; it is safe to call
// more than once and after c has been shed.
func (r *Registry) Add(c Conn) (remove func()) {
	if c == nil {
		panic("shed: Registry.Add of a nil Conn")
	}
	e := &entry{conn: c}
	r.mu.Lock()
	r.pushBack(e)
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		r.unlink(e)
		r.mu.Unlock()
	}
}

// Len reports the number of tracked connections.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// Shed closes up to n connections, oldest first, and reports how many it
// told to close. The chosen connections stop being tracked at once; they are
// closed concurrently, and Shed returns when all have been told or ctx ends.
// A connection whose Conn.Shed failed with an error other than ctx's is not
// counted. When ctx has already ended, Shed closes nothing.
func (r *Registry) Shed(ctx context.Context, n int) (closed int) {
	if n <= 0 || ctx.Err() != nil {
		return 0
	}
	victims := r.takeOldest(n)
	if len(victims) == 0 {
		return 0
	}
	errs := make(chan error, len(victims))
	for _, c := range victims {
		go func() { errs <- c.Shed(ctx) }()
	}
	reported := 0
	for reported < len(victims) {
		select {
		case err := <-errs:
			reported++
			if told(err) {
				closed++
			}
		case <-ctx.Done():
			// A connection still closing was told; its goroutine ends once
			// its Shed returns, which ctx also bounds.
			pending := len(victims) - reported
			for {
				select {
				case err := <-errs:
					if !told(err) {
						pending--
					}
				default:
					return closed + pending
				}
			}
		}
	}
	return closed
}

// told reports whether a Conn.Shed result means the peer was told to go.
func told(err error) bool {
	return err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// takeOldest unlinks and returns up to n of the oldest connections.
func (r *Registry) takeOldest(n int) []Conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	victims := make([]Conn, 0, min(n, r.n))
	for len(victims) < n && r.head != nil {
		e := r.head
		r.unlink(e)
		victims = append(victims, e.conn)
	}
	return victims
}

func (r *Registry) pushBack(e *entry) {
	e.prev, e.next, e.linked = r.tail, nil, true
	if r.tail != nil {
		r.tail.next = e
	} else {
		r.head = e
	}
	r.tail = e
	r.n++
}

func (r *Registry) unlink(e *entry) {
	if !e.linked {
		return
	}
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		r.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		r.tail = e.prev
	}
	e.prev, e.next, e.linked = nil, nil, false
	r.n--
}

// Interface guard.
var _ Conn = ConnFunc(nil)
