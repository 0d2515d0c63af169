// Package dnsgeo is Outpost's authoritative geo DNS server: it answers for
// the CDN's zone, and gives each service hostname the address of the PoP
// nearest to the user that is healthy right now.
//
// The client is the EDNS Client Subnet of the query when a usable one is
// present (RFC 7871), else the query's source address. A chain of Locators
// — the operator's network map, its ASN rows through an ASN database,
// then a City database (package geodb) — places the client either at a
// PoP or at a point on Earth; the PoPs are then ranked
// by great-circle distance from that point, or in the configured fallback
// order when nothing places the client. PoPs that the health prober saw
// down or draining are skipped, and among the healthy PoPs within Spread
// km of the nearest one is chosen in proportion to the weights by
// rendezvous hashing of the client's subnet, so each subnet keeps its PoP;
// if no PoP is healthy, all count as healthy (fail open). The answer is one
// A or AAAA record with a short TTL, and the ECS scope it echoes is the
// widest subnet for which that answer holds.
//
// Where a control plane carries the PoPs' own states (package popapi; the
// caller hands each to ObserveState), health combines them with the
// probes: a fresh state outweighs probes that get no answer, a PoP whose
// states stop while others' arrive is out within dns.states.max_age, and
// without states the probes alone decide (states.go). A PoP whose state
// reports a load above dns.load_shedding.threshold sheds a share of its
// users, growing slowly while the load stays high and shrinking once it
// falls below the release level, to the next-nearest healthy PoP; which
// users is fixed by a hash of their subnet (load.go).
//
// Every step of a decision is kept (Decide returns the reasons), so an
// operator can ask why a client went where it did. The server, its health
// prober and its admin listener (/healthz, /metrics, /stats) run until the
// context given to Run is done. The package knows PoPs only through the
// configuration and their HTTP health endpoints; it never imports package
// pop.
//
// Beside the geo answers the zone holds the SOA, its name servers, the
// static records of dns.records (CNAMEs followed inside the zone, NS
// delegations answered with referrals) and the TXT records that ACME
// clients put at _acme-challenge names through the admin listener
// (acme.go). Errors are answered as gdnsd answers them: the question and
// OPT record kept, QR and RD the only flags (reject.go). With
// dns.dnssec, answers to queries with the DO bit are signed as they are
// made, with signatures cached per RRset (package dnssec), and negative
// answers use compact denial (RFC 9824; sign.go).
//
// Everything derived from the configuration lives in one immutable state
// that each query loads once; Reload builds a new state aside (network map
// and databases included) and swaps it in, so no query sees half of a
// reload. UDP replies can be rate limited per client network (RRL, with
// slip); TCP never is.
package dnsgeo
