package runtime

import (
	"cmp"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/haproxy"
)

// SessionCloser closes this host's sessions through HAProxy's runtime API
// ("shutdown session"), the oldest first over the endpoints, as the shed
// hook's registry does: a client that was just moved here is the youngest,
// so it is not moved again in the same round. The session list is read
// once and closed from until it runs out: "show sess" lists every stream
// of the HAProxy (54 MB at 200,000 streams), and a shedding job closes a
// few at a time. A session that ended meanwhile is skipped. A list with
// none of this host's is read again at most once a second.
type SessionCloser struct {
	// Set once by NewSet.
	endpoints []*Endpoint

	// turn is held by the one Close running: it reads and closes over the
	// network, so a caller waits for it only until its own deadline.
	turn chan struct{}
	// Owned by the holder of turn.
	listed time.Time
	queue  []session // this host's sessions, oldest first, not yet closed
	// now is the clock; time.Now but in tests.
	now func() time.Time
}

// session is one of this host's streams in one HAProxy.
type session struct {
	e   *Endpoint
	id  string
	age time.Duration
}

// sessionsTTL is how long a "show sess" listing with none of this host's
// sessions stands.
const sessionsTTL = time.Second

// ErrNoSessions says that HAProxy lists no session of this host's servers.
var ErrNoSessions = errors.New("no sessions of this server in HAProxy")

// ErrCloserBusy says that another close held the closer until the
// caller's deadline.
var ErrCloserBusy = errors.New("another shedding round is closing sessions through the runtime API")

// Close closes up to n of this host's sessions and says how many it
// closed. It gives up at ctx's deadline.
func (c *SessionCloser) Close(ctx context.Context, n int, _ string) (int, error) {
	select {
	case c.turn <- struct{}{}:
	case <-ctx.Done():
		return 0, ErrCloserBusy
	}
	defer func() { <-c.turn }()
	var errs []error
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	closed := 0
	for listed := false; closed < n && ctx.Err() == nil; {
		if len(c.queue) == 0 {
			// Run out: list again, once per call, and not within a
			// second of a list with none of this host's.
			if listed || now().Sub(c.listed) < sessionsTTL {
				break
			}
			var listErrs []error
			c.queue, listErrs = c.list(ctx)
			errs = append(errs, listErrs...)
			listed = true
			if len(c.queue) == 0 {
				c.listed = now()
				break
			}
		}
		s := c.queue[0]
		c.queue = c.queue[1:]
		if err := s.e.rt.ShutdownSession(ctx, s.id); err != nil {
			if !errors.Is(err, haproxy.ErrNoSuchSession) { // it ended by itself meanwhile
				errs = append(errs, err)
			}
			continue
		}
		closed++
	}
	if closed == 0 && len(errs) == 0 {
		return 0, ErrNoSessions
	}
	return closed, errors.Join(errs...)
}

// Via names the way, as shed.via does.
func (c *SessionCloser) Via() string { return string(config.ShedViaRuntime) }

// list reads this host's sessions from every endpoint, the oldest first
// (HAProxy gives ages in whole seconds: equal ages in random order).
func (c *SessionCloser) list(ctx context.Context) ([]session, []error) {
	var all []session
	var errs []error
	for _, e := range c.endpoints {
		targets := e.Targets()
		// Streamed: an HAProxy's whole stream list is large, this host's
		// share of it is what is kept.
		var mine []session
		err := e.rt.EachSession(ctx, func(s haproxy.Session) error {
			if slices.Contains(targets, Target{s.Backend, s.Server}) {
				mine = append(mine, session{e, s.ID, s.Age})
			}
			return nil
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		all = append(all, mine...)
	}
	rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	slices.SortStableFunc(all, func(a, b session) int { return cmp.Compare(b.age, a.age) })
	return all, errs
}
