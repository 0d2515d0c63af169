package dnsgeo

import (
	"sync"
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

// The sizes of the label sets above.
const (
	numTypes  = 6
	numRcodes = 8
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
// bumps and the collector reads at scrape time. Counters of one PoP live
// with it (popCounts), so that they follow it across reloads and leave
// with it.
type metrics struct {
	noPOP      [numTypes * numRcodes * 2]atomic.Uint64 // replies without a PoP's address: [type][rcode][ecs]
	failOpen   atomic.Uint64
	truncated  atomic.Uint64
	rejected   atomic.Uint64    // FORMERR or NOTIMP from the header alone
	invalid    atomic.Uint64    // could not be parsed
	rrlDropped atomic.Uint64    // UDP replies not sent: over the rate limit
	rrlSlipped atomic.Uint64    // sent empty and truncated instead: over the rate limit
	reloads    [2]atomic.Uint64 // [ok, rejected]
	states     [numStateResults]atomic.Uint64
	acme       [numACMEResults]atomic.Uint64 // requests to the ACME endpoint, by acmeResultNames

	// The answer cache (answercache.go): lookups that found a usable
	// entry or not, entries replaced by another key's, and answers not
	// kept because the cache held answerCacheBytes.
	answerHits, answerMisses, answerEvictions, answerSkipped atomic.Uint64

	decisionsMu sync.Mutex
	decisions   map[string]*atomic.Uint64 // by what placed the client; kept across reloads
}

func newMetrics() *metrics {
	return &metrics{decisions: make(map[string]*atomic.Uint64)}
}

// decision returns the counter of decisions made by name.
func (m *metrics) decision(name string) *atomic.Uint64 {
	m.decisionsMu.Lock()
	defer m.decisionsMu.Unlock()
	c := m.decisions[name]
	if c == nil {
		c = new(atomic.Uint64)
		m.decisions[name] = c
	}
	return c
}

// queryIndex indexes the [type][rcode][ecs] arrays.
func queryIndex(t, rcode, ecs int) int {
	return (t*numRcodes+rcode)*2 + ecs
}

// count records one answered query, under the state it was answered by.
func (m *metrics) count(st *state, o outcome) {
	ecs := 0
	if o.ecs {
		ecs = 1
	}
	i := queryIndex(typeIndex(o.qtype), rcodeIndex(o.rcode), ecs)
	if o.pop != nil {
		o.pop.counts.queries[i].Add(1)
		if o.failover {
			o.pop.counts.failovers.Add(1)
		}
	} else {
		m.noPOP[i].Add(1)
	}
	if o.by >= 0 {
		st.decisions[o.by].Add(1)
	}
	if o.failOpen {
		m.failOpen.Add(1)
	}
	if o.shedFrom != nil {
		o.shedFrom.counts.shed.Add(1)
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
	descACMERequests = prometheus.NewDesc("outpost_dns_acme_requests_total",
		"Requests to the ACME endpoint (dns.acme), by result: presented, cleaned_up, bad_request, unauthorized, full.", []string{"result"}, nil)
	descACMERecords = prometheus.NewDesc("outpost_dns_acme_records",
		"ACME challenge TXT records held.", nil, nil)
	descDNSSECSigs = prometheus.NewDesc("outpost_dns_dnssec_rrsets_total",
		"RRsets of signed answers (DO), by where their signatures came from: cached, or signed now.", []string{"result"}, nil)
	descDNSSECCache = prometheus.NewDesc("outpost_dns_dnssec_cache_entries",
		"RRsets whose signatures are cached (at most dns.dnssec.cache_size).", nil, nil)
	descDNSSECEvicted = prometheus.NewDesc("outpost_dns_dnssec_cache_evictions_total",
		"Cached signatures dropped for room.", nil, nil)
	descAnswerLookups = prometheus.NewDesc("outpost_dns_answer_cache_lookups_total",
		"UDP queries looked up in the answer cache, by result: hit, or miss (absent, or made before a PoP's health or state changed).", []string{"result"}, nil)
	descAnswerEvictions = prometheus.NewDesc("outpost_dns_answer_cache_evictions_total",
		"Cached answers replaced by another query's in their slot.", nil, nil)
	descAnswerSkipped = prometheus.NewDesc("outpost_dns_answer_cache_skipped_total",
		"Answers not cached because the cache held its most bytes.", nil, nil)
	descAnswerEntries = prometheus.NewDesc("outpost_dns_answer_cache_entries",
		"Answers in the answer cache of the running configuration.", nil, nil)
	descAnswerBytes = prometheus.NewDesc("outpost_dns_answer_cache_bytes",
		"Bytes the answer cache of the running configuration holds (keys, replies and entries).", nil, nil)
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
	descRRLDropped = prometheus.NewDesc("outpost_dns_rrl_dropped_total",
		"UDP replies not sent because their client network was over dns.rate_limit.", nil, nil)
	descRRLSlipped = prometheus.NewDesc("outpost_dns_rrl_slipped_total",
		"UDP replies over dns.rate_limit sent empty and truncated (TC, slip) so that real clients retry over TCP.", nil, nil)
	descReloads = prometheus.NewDesc("outpost_dns_reloads_total",
		"Configuration reloads (SIGHUP), by result: ok, or rejected (the old configuration kept serving).", []string{"result"}, nil)
	descStates = prometheus.NewDesc("outpost_dns_states_total",
		"PoP states received from the control plane, by result: accepted, stale (older than dns.states.max_age), future (beyond dns.states.skew), reordered (not newer than the PoP's latest), unknown_pop.",
		[]string{"result"}, nil)
	descStateAge = prometheus.NewDesc("outpost_dns_pop_state_age_seconds",
		"Age of the latest state accepted from a PoP; absent until one arrives.", []string{"pop"}, nil)
	descPOPLoad = prometheus.NewDesc("outpost_dns_pop_load",
		"A PoP's load by its latest fresh state (1 is at its configured capacity); absent without a fresh state.", []string{"pop"}, nil)
	descShedShare = prometheus.NewDesc("outpost_dns_pop_shed_share",
		"Share of a PoP's users that DNS sends to the next-nearest PoP because of its load (0..dns.load_shedding.max_share).", []string{"pop"}, nil)
	descShedAnswers = prometheus.NewDesc("outpost_dns_shed_answers_total",
		"Geo answers that went to another PoP because this PoP shed load, by the PoP that shed them.", []string{"pop"}, nil)
)

// collector exports the counters as Prometheus metrics at scrape time.
type collector struct{ s *Server }

var _ prometheus.Collector = (*collector)(nil)

// Describe sends every metric description.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueries, descDecisions, descFailovers, descFailOpen,
		descTruncated, descRejected, descInvalid, descPOPUp, descPOPDraining, descChecks, descDraining, descNetworks,
		descRRLDropped, descRRLSlipped, descReloads, descStates, descStateAge, descPOPLoad, descShedShare, descShedAnswers,
		descACMERequests, descACMERecords, descDNSSECSigs, descDNSSECCache, descDNSSECEvicted,
		descAnswerLookups, descAnswerEvictions, descAnswerSkipped, descAnswerEntries, descAnswerBytes} {
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
	st := s.state.Load()
	queries := func(qs *[numTypes * numRcodes * 2]atomic.Uint64, pop string) {
		for t := range typeNames {
			for r := range rcodeNames {
				for e := range ecsNames {
					if v := qs[queryIndex(t, r, e)].Load(); v > 0 {
						counter(descQueries, v, typeNames[t], rcodeNames[r], pop, ecsNames[e])
					}
				}
			}
		}
	}
	queries(&m.noPOP, noPOP)
	for i, name := range st.byNames {
		counter(descDecisions, st.decisions[i].Load(), name)
	}
	mo := s.moment(st)
	for _, p := range st.pops {
		queries(&p.counts.queries, p.name)
		counter(descFailovers, p.counts.failovers.Load(), p.name)
		h, _ := st.status(p, mo)
		gauge(descPOPUp, b2f(h == Up), p.name)
		gauge(descPOPDraining, b2f(h == Draining), p.name)
		for r := range numProbeResults {
			counter(descChecks, p.health.checks[r].Load(), p.name, probeResultNames[r])
		}
		if at := p.report.at.Load(); at != 0 && mo.now != 0 {
			gauge(descStateAge, float64(mo.now-at)/1e9, p.name)
			if mo.now-at <= st.maxAge {
				gauge(descPOPLoad, reportLoad(p.report.word.Load()), p.name)
			}
		}
		share, _ := st.shedShare(p, mo)
		gauge(descShedShare, share, p.name)
		counter(descShedAnswers, p.counts.shed.Load(), p.name)
	}
	for r := range numStateResults {
		counter(descStates, m.states[r].Load(), stateResultNames[r])
	}
	counter(descFailOpen, m.failOpen.Load())
	counter(descTruncated, m.truncated.Load())
	counter(descRejected, m.rejected.Load())
	counter(descInvalid, m.invalid.Load())
	gauge(descDraining, b2f(s.draining.Load()))
	if st.networks >= 0 {
		gauge(descNetworks, float64(st.networks))
	}
	counter(descRRLDropped, m.rrlDropped.Load())
	counter(descRRLSlipped, m.rrlSlipped.Load())
	counter(descReloads, m.reloads[0].Load(), "ok")
	counter(descReloads, m.reloads[1].Load(), "rejected")
	for r := range numACMEResults {
		counter(descACMERequests, m.acme[r].Load(), acmeResultNames[r])
	}
	gauge(descACMERecords, float64(s.acme.count()))
	counter(descAnswerLookups, m.answerHits.Load(), "hit")
	counter(descAnswerLookups, m.answerMisses.Load(), "miss")
	counter(descAnswerEvictions, m.answerEvictions.Load())
	counter(descAnswerSkipped, m.answerSkipped.Load())
	if c := st.answers; c != nil {
		gauge(descAnswerEntries, float64(c.entries.Load()))
		gauge(descAnswerBytes, float64(c.bytes.Load()))
	}
	if st.signer != nil {
		ss := st.signer.Stats()
		counter(descDNSSECSigs, ss.Cached, "cached")
		counter(descDNSSECSigs, ss.Signed, "signed")
		counter(descDNSSECEvicted, ss.Evicted)
		gauge(descDNSSECCache, float64(ss.Entries))
	}
}

// Results of requests to the ACME endpoint, for metrics.
const (
	acmePresented = iota
	acmeCleaned
	acmeBad
	acmeUnauthorized
	acmeFull
	numACMEResults
)

var acmeResultNames = [numACMEResults]string{"presented", "cleaned_up", "bad_request", "unauthorized", "full"}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
