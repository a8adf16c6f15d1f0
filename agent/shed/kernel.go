package shed

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/internal/sockdiag"
)

// KernelCloser has the kernel close this host's established connections
// on the watched ports (sock_diag SOCK_DESTROY, as ss -K does), for hosts
// where neither HAProxy's runtime API nor the application can: the
// application's socket fails with ECONNABORTED, HAProxy reads a reset
// from the server and closes the client's side, and a cooperating client
// reconnects through HAProxy, as after "shutdown session". The oldest
// sockets go first, by inode number, which the kernel hands out in
// roughly increasing order.
//
// The sockets are listed once and closed from that list until it runs
// out: a drain at 50 a second closes a few at a time, and listing 100,000
// sockets each time would cost more than the drain.
type KernelCloser struct {
	// Set once by NewKernelCloser.
	ports []uint16
	diag  sockdiag.Diag

	// turn is held by the one Close running; the queue is its owner's.
	turn  chan struct{}
	queue []sockdiag.Key // oldest first, not yet closed
}

// ErrNoSockets says that no established connection is left on the ports.
var ErrNoSockets = errors.New("no established connections on the watched ports")

// NewKernelCloser is a closer of the established connections on ports,
// which must not be empty (every port would close every service's
// connections, ssh's too). It fails when this process cannot close
// sockets: no CAP_NET_ADMIN, or a kernel without CONFIG_INET_DIAG_DESTROY.
func NewKernelCloser(ports []uint16) (*KernelCloser, error) {
	if len(ports) == 0 {
		return nil, errors.New("shed.via: kernel needs sources.ports: the application's ports, whose connections it closes")
	}
	k := &KernelCloser{ports: slices.Clone(ports), turn: make(chan struct{}, 1)}
	if err := k.check(); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *KernelCloser) check() error {
	ok, err := sockdiag.HasNetAdmin()
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("shed.via: kernel needs CAP_NET_ADMIN, which this process lacks: " +
			"give it to the agent (systemctl edit hafeed: [Service] AmbientCapabilities=CAP_NET_ADMIN and CapabilityBoundingSet=CAP_NET_ADMIN), " +
			"or choose another shed.via")
	}
	if err := k.diag.CanDestroy(); err != nil {
		return fmt.Errorf("shed.via: kernel: %w; choose another shed.via", err)
	}
	return nil
}

// Close implements Closer.
func (k *KernelCloser) Close(ctx context.Context, n int, _ string) (int, error) {
	select {
	case k.turn <- struct{}{}:
	case <-ctx.Done():
		return 0, ErrCloserBusy
	}
	defer func() { <-k.turn }()
	closed := 0
	for listed := false; closed < n && ctx.Err() == nil; {
		if len(k.queue) == 0 {
			if listed {
				break
			}
			if err := k.list(); err != nil {
				return closed, err
			}
			listed = true
			if len(k.queue) == 0 && closed == 0 {
				return 0, ErrNoSockets
			}
		}
		// The sockets gone since the listing are skipped: ask for the
		// rest until n are closed or the list runs out.
		batch := k.queue[:min(n-closed, len(k.queue))]
		k.queue = k.queue[len(batch):]
		c, err := k.diag.Destroy(batch, func() bool { return ctx.Err() == nil })
		closed += c
		if err != nil {
			return closed, err
		}
	}
	return closed, nil
}

// list reads the established connections on the ports, oldest first.
func (k *KernelCloser) list() error {
	type sock struct {
		inode uint32
		key   sockdiag.Key
	}
	var all []sock
	err := k.diag.EachTCP(sockdiag.Established, k.ports, func(s sockdiag.Sock) {
		all = append(all, sock{s.Inode(), s.Key()})
	})
	if err != nil {
		return fmt.Errorf("listing the connections to close: %w", err)
	}
	slices.SortFunc(all, func(a, b sock) int { return cmp.Compare(a.inode, b.inode) })
	k.queue = make([]sockdiag.Key, len(all))
	for i, s := range all {
		k.queue[i] = s.key
	}
	return nil
}

// Via implements Closer.
func (k *KernelCloser) Via() string { return string(config.ShedViaKernel) }

// ErrCloserBusy says that another close held the closer until the
// caller's deadline.
var ErrCloserBusy = errors.New("another shedding round is closing connections")

var _ Closer = (*KernelCloser)(nil)
