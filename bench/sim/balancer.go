package main

// algorithm is how an HAProxy picks a server.
type algorithm int

const (
	roundRobin algorithm = iota
	leastConn
)

// balancer is one HAProxy instance: its own connection count per server,
// the weight and maxconn it last heard from each agent, and the server
// choice by its algorithm. Servers are host indexes.
type balancer struct {
	algo algorithm
	// conns is this HAProxy's live connections on each server.
	conns []int32
	// weight is HAProxy's weight for each server (100 = weight 100 in
	// haproxy.cfg, so an agent's N% makes it N, at most 256).
	weight []int32
	// maxconn is 0 for unlimited.
	maxconn []int32
	// inRotation is false before a host joins and after it is drained.
	inRotation []bool

	// next is roundrobin's position.
	next int

	// heap orders the eligible servers by (conns+1)/weight, then by when
	// they were last repositioned, so that ties take turns as in HAProxy.
	// pos is each server's index in heap, -1 when out of it.
	heap    []node
	pos     []int32
	nextSeq uint64
}

func newBalancer(algo algorithm, servers int) *balancer {
	b := &balancer{
		algo:       algo,
		conns:      make([]int32, servers),
		weight:     make([]int32, servers),
		maxconn:    make([]int32, servers),
		inRotation: make([]bool, servers),
		pos:        make([]int32, servers),
	}
	for h := range servers {
		b.weight[h] = 100
		b.pos[h] = -1
	}
	return b
}

func (b *balancer) eligible(h int) bool {
	return b.inRotation[h] && b.weight[h] > 0 && (b.maxconn[h] == 0 || b.conns[h] < b.maxconn[h])
}

// pick returns the server for a new connection and counts it there, or -1
// when no server can take it.
func (b *balancer) pick() int {
	var h int
	switch b.algo {
	case roundRobin:
		h = -1
		for range len(b.conns) {
			c := b.next
			b.next = (b.next + 1) % len(b.conns)
			if b.eligible(c) {
				h = c
				break
			}
		}
	default:
		if len(b.heap) == 0 {
			return -1
		}
		h = int(b.heap[0].server)
	}
	if h >= 0 {
		b.conns[h]++
		b.reposition(h)
	}
	return h
}

// release counts a connection to h as closed.
func (b *balancer) release(h int) {
	b.conns[h]--
	b.reposition(h)
}

// set changes what HAProxy knows about a server.
func (b *balancer) set(h int, weight, maxconn int32, inRotation bool) {
	if b.weight[h] == weight && b.maxconn[h] == maxconn && b.inRotation[h] == inRotation {
		return
	}
	b.weight[h], b.maxconn[h], b.inRotation[h] = weight, maxconn, inRotation
	b.reposition(h)
}

// node is a server in the leastconn tree with its sort key. Division is
// correctly rounded, so equal ratios give equal keys and tie as in HAProxy.
type node struct {
	key    float64
	seq    uint64
	server int32
}

func (x *node) before(y *node) bool {
	if x.key != y.key {
		return x.key < y.key
	}
	return x.seq < y.seq
}

// reposition puts h where its key says, in or out of the tree.
func (b *balancer) reposition(h int) {
	if b.algo != leastConn {
		return
	}
	n := node{key: float64(b.conns[h]+1) / float64(b.weight[h]), seq: b.nextSeq, server: int32(h)}
	b.nextSeq++
	i := int(b.pos[h])
	switch {
	case i < 0 && b.eligible(h):
		b.heap = append(b.heap, n)
		b.place(len(b.heap)-1, n)
		b.up(len(b.heap) - 1)
	case i >= 0 && !b.eligible(h):
		b.pos[h] = -1
		last := b.heap[len(b.heap)-1]
		b.heap = b.heap[:len(b.heap)-1]
		if i < len(b.heap) {
			b.place(i, last)
			if !b.down(i) {
				b.up(i)
			}
		}
	case i >= 0:
		b.heap[i] = n
		if !b.down(i) {
			b.up(i)
		}
	}
}

func (b *balancer) place(i int, n node) {
	b.heap[i] = n
	b.pos[n.server] = int32(i)
}

func (b *balancer) up(i int) {
	n := b.heap[i]
	for i > 0 {
		parent := (i - 1) / 2
		if !n.before(&b.heap[parent]) {
			break
		}
		b.place(i, b.heap[parent])
		i = parent
	}
	b.place(i, n)
}

// down sinks the server at i and reports whether it moved.
func (b *balancer) down(i int) bool {
	start, n, size := i, b.heap[i], len(b.heap)
	for {
		child := 2*i + 1
		if child >= size {
			break
		}
		if r := child + 1; r < size && b.heap[r].before(&b.heap[child]) {
			child = r
		}
		if !b.heap[child].before(&n) {
			break
		}
		b.place(i, b.heap[child])
		i = child
	}
	b.place(i, n)
	return i > start
}
