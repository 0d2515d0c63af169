package bench

import (
	"sync"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// The latency histograms count microseconds from 1 µs to an hour with
// three significant digits (0.1%); the per-interval ones for the charts
// with one (about 6%), which is all a line on a chart can show.
const (
	maxLatencyMicros = int64(time.Hour / time.Microsecond)
	histDigits       = 3
	seriesDigits     = 1
)

func newHist() *hdr.Histogram { return hdr.New(1, maxLatencyMicros, histDigits) }

func newSeriesHist() *hdr.Histogram { return hdr.New(1, maxLatencyMicros, seriesDigits) }

// micros converts a latency to the histograms' unit, clamped to their
// range.
func micros(d time.Duration) int64 {
	return min(max(int64(d/time.Microsecond), 1), maxLatencyMicros)
}

// sample is one finished request as the recorder takes it.
type sample struct {
	measured bool
	interval int // series index; meaningful when measured
	latency  time.Duration
	kind     errKind
	answered bool // a response (status line and header) arrived
	class    Class
	status   int
	bytes    int64  // body bytes received
	pop      []byte // the Cache-Status cache name; empty when there is none
	addr     string // the address that answered
	proto    string // the response's protocol version ("HTTP/2.0"), when answered
	region   int    // index into Config.Regions; -1 without regions
}

// group is the figures of a set of requests: all of them, one PoP's or
// one region's.
type group struct {
	requests   int64 // finished, answered or not
	answered   int64
	errors     int64
	bytes      int64
	classes    [numClasses]int64
	classBytes [numClasses]int64
	hist       *hdr.Histogram
	addrs      map[string]int64 // requests by answering address
}

func newGroup() *group { return &group{hist: newHist(), addrs: make(map[string]int64)} }

func (g *group) add(s *sample) {
	g.requests++
	if s.kind != errNone {
		g.errors++
	}
	if s.answered {
		g.answered++
		g.bytes += s.bytes
		g.classes[s.class]++
		g.classBytes[s.class] += s.bytes
		g.hist.RecordValue(micros(s.latency))
		if s.addr != "" {
			g.addrs[s.addr]++
		}
	} else if s.kind == errTimeout {
		// A request that timed out waited that long: leaving it out would
		// hide exactly the slowest requests.
		g.hist.RecordValue(micros(s.latency))
	}
}

func (g *group) merge(o *group) {
	g.requests += o.requests
	g.answered += o.answered
	g.errors += o.errors
	g.bytes += o.bytes
	for i := range g.classes {
		g.classes[i] += o.classes[i]
		g.classBytes[i] += o.classBytes[i]
	}
	g.hist.Merge(o.hist)
	for a, n := range o.addrs {
		g.addrs[a] += n
	}
}

// point is one interval of the time series.
type point struct {
	requests int64
	answered int64
	errors   int64
	hits     int64
	bytes    int64
	hist     *hdr.Histogram
}

// dnsFigures count a run's DNS resolutions.
type dnsFigures struct {
	queries    int64
	failures   int64
	tcpRetries int64
	answers    map[string]int64 // resolutions by answered address
}

// shard is the recorder of a subset of the virtual clients. Sharding keeps
// the lock uncontended and the memory bounded: a histogram with three
// digits is about 190 KB, too much to give each of thousands of clients
// one per group.
type shard struct {
	mu       sync.Mutex
	total    *group
	kinds    [numErrKinds]int64
	statuses map[int]int64
	protos   map[string]int64 // responses by protocol version
	regions  []*group
	pops     map[string]*group
	series   []*point
	dns      dnsFigures

	// live counts for the progress line, warm-up included
	live struct{ requests, errors, answered, hits int64 }
}

func newShard(regions int) *shard {
	s := &shard{
		total:    newGroup(),
		statuses: make(map[int]int64),
		protos:   make(map[string]int64),
		pops:     make(map[string]*group),
		dns:      dnsFigures{answers: make(map[string]int64)},
	}
	for range regions {
		s.regions = append(s.regions, newGroup())
	}
	return s
}

// record counts one finished request.
func (s *shard) record(x *sample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live.requests++
	if x.kind != errNone {
		s.live.errors++
	}
	if x.answered {
		s.live.answered++
		if x.class.isHit() {
			s.live.hits++
		}
	}
	if !x.measured {
		return
	}
	s.total.add(x)
	s.kinds[x.kind]++
	if x.answered {
		s.statuses[x.status]++
		s.protos[x.proto]++
	}
	if x.region >= 0 && x.region < len(s.regions) {
		s.regions[x.region].add(x)
	}
	if x.answered {
		key := x.pop
		var g *group
		if len(key) > 0 {
			g = s.pops[string(key)]
		} else {
			g = s.pops[x.addr]
		}
		if g == nil {
			g = newGroup()
			if len(key) > 0 {
				s.pops[string(key)] = g
			} else {
				s.pops[x.addr] = g
			}
		}
		g.add(x)
	}
	if x.interval >= 0 {
		for len(s.series) <= x.interval {
			s.series = append(s.series, nil)
		}
		p := s.series[x.interval]
		if p == nil {
			p = &point{hist: newSeriesHist()}
			s.series[x.interval] = p
		}
		p.requests++
		if x.kind != errNone {
			p.errors++
		}
		if x.answered {
			p.answered++
			p.bytes += x.bytes
			if x.class.isHit() {
				p.hits++
			}
			p.hist.RecordValue(micros(x.latency))
		}
	}
}

// recordDNS counts a resolution.
func (s *shard) recordDNS(r dnsResult, addr string, failed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dns.queries += int64(r.queries)
	s.dns.tcpRetries += int64(r.tcpRetries)
	if failed {
		s.dns.failures++
	} else {
		s.dns.answers[addr]++
	}
}

// liveCounts returns the progress counters.
func (s *shard) liveCounts() (requests, errors, answered, hits int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live.requests, s.live.errors, s.live.answered, s.live.hits
}

// merged is the union of all shards.
type merged struct {
	total    *group
	kinds    [numErrKinds]int64
	statuses map[int]int64
	protos   map[string]int64
	regions  []*group
	pops     map[string]*group
	series   []*point
	dns      dnsFigures
}

func mergeShards(shards []*shard, regions int) *merged {
	m := &merged{
		total:    newGroup(),
		statuses: make(map[int]int64),
		protos:   make(map[string]int64),
		pops:     make(map[string]*group),
		dns:      dnsFigures{answers: make(map[string]int64)},
	}
	for range regions {
		m.regions = append(m.regions, newGroup())
	}
	for _, s := range shards {
		s.mu.Lock()
		m.total.merge(s.total)
		for i, n := range s.kinds {
			m.kinds[i] += n
		}
		for code, n := range s.statuses {
			m.statuses[code] += n
		}
		for p, n := range s.protos {
			m.protos[p] += n
		}
		for i, g := range s.regions {
			m.regions[i].merge(g)
		}
		for k, g := range s.pops {
			if m.pops[k] == nil {
				m.pops[k] = newGroup()
			}
			m.pops[k].merge(g)
		}
		for i, p := range s.series {
			for len(m.series) <= i {
				m.series = append(m.series, nil)
			}
			if p == nil {
				continue
			}
			q := m.series[i]
			if q == nil {
				q = &point{hist: newSeriesHist()}
				m.series[i] = q
			}
			q.requests += p.requests
			q.answered += p.answered
			q.errors += p.errors
			q.hits += p.hits
			q.bytes += p.bytes
			q.hist.Merge(p.hist)
		}
		m.dns.queries += s.dns.queries
		m.dns.failures += s.dns.failures
		m.dns.tcpRetries += s.dns.tcpRetries
		for a, n := range s.dns.answers {
			m.dns.answers[a] += n
		}
		s.mu.Unlock()
	}
	return m
}
