package config

import (
	"go.yaml.in/yaml/v3"
)

// This file is a PoP's limits section: what clients can make one PoP
// hold (connections, bytes in flight, detached fills, ranges, buffered
// request bodies).

// Defaults and bounds of a PoP's limits. maxMaxConns and
// maxDetachedFills also bound an origin's max_conns and detached_fills.
const (
	defaultMaxConns      = 10_000
	maxMaxConns          = 1_000_000
	defaultInflightBytes = 256 << 20 // 256 MiB
	minInflightBytes     = 1 << 20   // 1 MiB
	defaultDetachedFills = 64
	maxDetachedFills     = 100_000
	defaultMaxRanges     = 200
	maxMaxRanges         = 10_000
	defaultRequestBuffer = 1 << 20 // 1 MiB
	maxRequestBuffer     = 1 << 30 // 1 GiB
)

// Limits bound the memory, connections and origin load that clients can
// cause at one PoP.
type Limits struct {
	// MaxConns caps the client connections open on each listener (clear,
	// TLS); past it new connections wait in the kernel's accept queue.
	// Default 10000.
	MaxConns int
	// InflightBytes is the PoP-wide budget for bytes held in memory by
	// fills in flight and by request bodies being buffered. A fill that
	// cannot get its bytes from the budget stops storing and relays the
	// origin's body at its clients' pace with a small buffer. Default
	// 256 MiB, at least 1 MiB.
	InflightBytes int64
	// DetachedFills bounds, PoP-wide, the fills that go on after every
	// client that asked for them has gone. Default 64; 0 means none.
	DetachedFills int
	// MaxRanges is the most ranges one Range request may ask for; a
	// request with more is answered with the whole representation (as
	// Apache's MaxRanges). Default 200.
	MaxRanges int
	// RequestBuffer is how much of a request body (POST, PUT...) the PoP
	// reads before it contacts the origin, so a client that sends slowly
	// holds no origin connection; longer bodies stream after it. Default
	// 1 MiB; 0 means bodies always stream.
	RequestBuffer int64
}

// limitsDefaults returns the limits of a PoP whose file leaves them out.
func limitsDefaults() Limits {
	return Limits{MaxConns: defaultMaxConns, InflightBytes: defaultInflightBytes, DetachedFills: defaultDetachedFills,
		MaxRanges: defaultMaxRanges, RequestBuffer: defaultRequestBuffer}
}

// limits decodes a PoP's limits into l, which holds the defaults.
func (d *decoder) limits(n *yaml.Node, path string, l *Limits) {
	d.fields(n, path, []field{
		optional("max_conns", d.setInt(&l.MaxConns, 1, maxMaxConns)),
		optional("inflight_bytes", d.setSize(&l.InflightBytes, minInflightBytes)),
		optional("detached_fills", d.setInt(&l.DetachedFills, 0, maxDetachedFills)),
		optional("max_ranges", d.setInt(&l.MaxRanges, 1, maxMaxRanges)),
		optional("request_buffer", d.setSizeRange(&l.RequestBuffer, 0, maxRequestBuffer)),
	})
}
