package dnsgeo

import (
	"sync/atomic"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// The label values of outpost_dns_queries_total: a fixed set each, so the
// series are bounded by the number of PoPs.
var (
	typeNames  = []string{"A", "AAAA", "ANY", "SOA", "NS", "other"}
	rcodeNames = []string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS", "other"}
	ecsNames   = []string{"false", "true"}
)

// noPOP is the pop label of replies that carry no PoP's address.
const noPOP = "none"

func typeIndex(t uint16) int {
	switch t {
	case dns.TypeA:
		return 0
	case dns.TypeAAAA:
		return 1
	case dns.TypeANY:
		return 2
	case dns.TypeSOA:
		return 3
	case dns.TypeNS:
		return 4
	}
	return 5
}

func rcodeIndex(rcode int) int {
	switch rcode {
	case dns.RcodeSuccess:
		return 0
	case dns.RcodeFormatError:
		return 1
	case dns.RcodeServerFailure:
		return 2
	case dns.RcodeNameError:
		return 3
	case dns.RcodeNotImplemented:
		return 4
	case dns.RcodeRefused:
		return 5
	case dns.RcodeBadVers:
		return 6
	}
	return 7
}

// metrics are the server's counters: plain atomics that the query path
// bumps and the collector reads at scrape time.
type metrics struct {
	npop      int
	queries   []atomic.Uint64 // [type][rcode][pop+1][ecs]; pop 0 is "none"
	decisions []atomic.Uint64 // by what placed the client
	failovers []atomic.Uint64 // by PoP answered
	failOpen  atomic.Uint64
	truncated atomic.Uint64
	rejected  atomic.Uint64 // FORMERR or NOTIMP from the header alone
	invalid   atomic.Uint64 // could not be parsed
}

func newMetrics(npop, nby int) *metrics {
	return &metrics{
		npop:      npop,
		queries:   make([]atomic.Uint64, len(typeNames)*len(rcodeNames)*(npop+1)*len(ecsNames)),
		decisions: make([]atomic.Uint64, nby),
		failovers: make([]atomic.Uint64, npop),
	}
}

func (m *metrics) queryIndex(t, rcode, pop, ecs int) int {
	return ((t*len(rcodeNames)+rcode)*(m.npop+1)+pop)*len(ecsNames) + ecs
}

// count records one answered query.
func (m *metrics) count(o outcome) {
	pop, ecs := 0, 0
	if o.pop != nil {
		pop = o.pop.index + 1
		if o.failover {
			m.failovers[o.pop.index].Add(1)
		}
	}
	if o.ecs {
		ecs = 1
	}
	m.queries[m.queryIndex(typeIndex(o.qtype), rcodeIndex(o.rcode), pop, ecs)].Add(1)
	if o.by >= 0 {
		m.decisions[o.by].Add(1)
	}
	if o.failOpen {
		m.failOpen.Add(1)
	}
	if o.truncated {
		m.truncated.Add(1)
	}
}

var (
	descQueries = prometheus.NewDesc("outpost_dns_queries_total",
		"Queries answered, by query type, response code, the PoP whose address the answer carries (none for answers without one) and whether the answer depended on the EDNS Client Subnet.",
		[]string{"type", "rcode", "pop", "ecs"}, nil)
	descDecisions = prometheus.NewDesc("outpost_dns_decisions_total",
		"Geo answers by what placed the client: a locator (networks, …) or the fallback order.",
		[]string{"by"}, nil)
	descFailovers = prometheus.NewDesc("outpost_dns_failover_answers_total",
		"Geo answers given by a PoP because the first choice was down or draining, by the PoP that answered.",
		[]string{"pop"}, nil)
	descFailOpen = prometheus.NewDesc("outpost_dns_fail_open_answers_total",
		"Geo answers given while no PoP was healthy, health ignored.", nil, nil)
	descTruncated = prometheus.NewDesc("outpost_dns_truncated_total",
		"UDP replies sent truncated (TC) so that the client retries over TCP.", nil, nil)
	descRejected = prometheus.NewDesc("outpost_dns_rejected_total",
		"Messages answered FORMERR or NOTIMP from their header alone (not a single-question QUERY).", nil, nil)
	descInvalid = prometheus.NewDesc("outpost_dns_invalid_total",
		"Messages that could not be parsed; those with a readable header got FORMERR.", nil, nil)
	descPOPUp = prometheus.NewDesc("outpost_dns_pop_up",
		"1 while a PoP is in rotation (healthy), 0 while it is down or draining.", []string{"pop"}, nil)
	descPOPDraining = prometheus.NewDesc("outpost_dns_pop_draining",
		"1 while a PoP's /healthz says it is draining.", []string{"pop"}, nil)
	descChecks = prometheus.NewDesc("outpost_dns_health_checks_total",
		"Health probes of each PoP's /healthz, by result (pass, fail, draining).", []string{"pop", "result"}, nil)
	descDraining = prometheus.NewDesc("outpost_dns_draining",
		"1 while the DNS server is shutting down.", nil, nil)
	descNetworks = prometheus.NewDesc("outpost_dns_network_map_entries",
		"Rows of the network map; absent when there is none.", nil, nil)
)

// collector exports the counters as Prometheus metrics at scrape time.
type collector struct{ s *Server }

var _ prometheus.Collector = (*collector)(nil)

// Describe sends every metric description.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueries, descDecisions, descFailovers, descFailOpen,
		descTruncated, descRejected, descInvalid, descPOPUp, descPOPDraining, descChecks, descDraining, descNetworks} {
		ch <- d
	}
}

// Collect reads the counters. Query series that are still zero are left
// out, since most combinations never happen.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s, m := c.s, c.s.metrics
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	popName := func(i int) string {
		if i == 0 {
			return noPOP
		}
		return s.pops[i-1].name
	}
	for t := range typeNames {
		for r := range rcodeNames {
			for p := 0; p <= m.npop; p++ {
				for e := range ecsNames {
					if v := m.queries[m.queryIndex(t, r, p, e)].Load(); v > 0 {
						counter(descQueries, v, typeNames[t], rcodeNames[r], popName(p), ecsNames[e])
					}
				}
			}
		}
	}
	for i, name := range s.byNames {
		counter(descDecisions, m.decisions[i].Load(), name)
	}
	for i, p := range s.pops {
		counter(descFailovers, m.failovers[i].Load(), p.name)
		st := p.health.get()
		gauge(descPOPUp, b2f(st == Up), p.name)
		gauge(descPOPDraining, b2f(st == Draining), p.name)
		for r := range numProbeResults {
			counter(descChecks, p.health.checks[r].Load(), p.name, probeResultNames[r])
		}
	}
	counter(descFailOpen, m.failOpen.Load())
	counter(descTruncated, m.truncated.Load())
	counter(descRejected, m.rejected.Load())
	counter(descInvalid, m.invalid.Load())
	gauge(descDraining, b2f(s.draining.Load()))
	if s.networks >= 0 {
		gauge(descNetworks, float64(s.networks))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
