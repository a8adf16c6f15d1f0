package e2e

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hafeed/hafeed/internal/testutil"
)

// dnsServer is an authoritative DNS server on loopback UDP that answers A
// queries from a table the test changes, standing in for the service
// discovery (Consul, Kubernetes, a cloud's DNS) HAProxy's resolvers poll.
// It answers A queries only: other types get an empty answer, unknown
// names NXDOMAIN.
type dnsServer struct {
	conn *net.UDPConn
	done chan struct{}

	mu      sync.Mutex
	records map[string][]netip.Addr // lower-case name without the final dot
}

func startDNS(t *testing.T) *dnsServer {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	d := &dnsServer{conn: conn, done: make(chan struct{}), records: map[string][]netip.Addr{}}
	go d.serve()
	t.Cleanup(func() {
		conn.Close()
		testutil.Recv(t, d.done, 10*time.Second, "the DNS server to stop")
	})
	return d
}

func (d *dnsServer) addr() string { return d.conn.LocalAddr().String() }

// set makes name resolve to addrs; none makes it an empty answer.
func (d *dnsServer) set(name string, addrs ...netip.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.records[strings.ToLower(name)] = addrs
}

func (d *dnsServer) serve() {
	defer close(d.done)
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return // closed
		}
		reply, err := d.answer(buf[:n])
		if err != nil {
			continue // not a query we understand: drop it, as a server may
		}
		d.conn.WriteToUDPAddrPort(reply, from)
	}
}

// DNS constants used here (RFC 1035).
const (
	dnsTypeA     = 1
	dnsClassIN   = 1
	dnsFlagQR    = 1 << 15
	dnsFlagAA    = 1 << 10
	dnsFlagRD    = 1 << 8
	dnsNXDomain  = 3
	dnsHeaderLen = 12
	dnsTTL       = 1
)

// answer builds the reply to one query message.
func (d *dnsServer) answer(msg []byte) ([]byte, error) {
	if len(msg) < dnsHeaderLen || binary.BigEndian.Uint16(msg[4:]) != 1 {
		return nil, errors.New("want a message with one question")
	}
	// The question: labels up to the root, then type and class.
	i := dnsHeaderLen
	var labels []string
	for {
		if i >= len(msg) {
			return nil, errors.New("truncated name")
		}
		l := int(msg[i])
		i++
		if l == 0 {
			break
		}
		if l > 63 || i+l > len(msg) {
			return nil, errors.New("bad label")
		}
		labels = append(labels, string(msg[i:i+l]))
		i += l
	}
	if i+4 > len(msg) {
		return nil, errors.New("truncated question")
	}
	qtype, qclass := binary.BigEndian.Uint16(msg[i:]), binary.BigEndian.Uint16(msg[i+2:])
	question := msg[dnsHeaderLen : i+4]

	d.mu.Lock()
	addrs, known := d.records[strings.ToLower(strings.Join(labels, "."))]
	d.mu.Unlock()

	flags := uint16(dnsFlagQR | dnsFlagAA)
	flags |= binary.BigEndian.Uint16(msg[2:]) & dnsFlagRD
	var answers []netip.Addr
	switch {
	case !known:
		flags |= dnsNXDomain
	case qtype == dnsTypeA && qclass == dnsClassIN:
		answers = addrs
	}
	out := make([]byte, dnsHeaderLen, 512)
	copy(out, msg[:2]) // the query's ID
	binary.BigEndian.PutUint16(out[2:], flags)
	binary.BigEndian.PutUint16(out[4:], 1)
	binary.BigEndian.PutUint16(out[6:], uint16(len(answers)))
	out = append(out, question...)
	for _, a := range answers {
		out = append(out, 0xc0, dnsHeaderLen) // the name: a pointer to the question's
		out = binary.BigEndian.AppendUint16(out, dnsTypeA)
		out = binary.BigEndian.AppendUint16(out, dnsClassIN)
		out = binary.BigEndian.AppendUint32(out, dnsTTL)
		out = binary.BigEndian.AppendUint16(out, 4)
		ip := a.As4()
		out = append(out, ip[:]...)
	}
	return out, nil
}
