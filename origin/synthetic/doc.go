// Package synthetic is the synthetic origin server that benchmarks, the lab
// and tests put behind Outpost's PoPs: an HTTP origin that behaves like a
// real one and can be made to misbehave on purpose.
//
// GET /obj/{id} serves an object whose bytes are a pure function of the id
// (a 4 KiB pseudo-random block seeded by a SHA-256 of the id, with each
// block's offset mixed in), so a client can check every byte it received
// with [Verify] or a [Verifier] without the origin ever storing anything.
// Its size comes from ?size= or, by default, from [SizeOf]: a lognormal
// draw seeded by the id, so a catalogue of N ids has a realistic,
// heavy-tailed mix of sizes. Objects carry a strong ETag, a Last-Modified
// in the past and a Cache-Control, and conditional and range requests are
// answered as RFC 9110 §13 and §14 say. Query parameters override the
// caching headers and inject faults (delay, status, connection reset,
// trickled body); server-wide options add latency and a random error rate.
//
// The origin counts the content requests it answers and the body bytes it
// sends (/_origin/stats), so a benchmark can compute how much traffic the
// CDN kept away from it, and it publishes a load figure (/_origin/load) for
// load-aware balancing. Everything is deterministic given the id and the
// seed, so runs can be compared and failures reproduced.
package synthetic
