// Package bench is Outpost's load tool as a library: it drives a CDN (or one
// PoP, or any HTTP server) with a workload and reports what a user would see
// — throughput, latency percentiles, errors by kind — and what the CDN did
// with each request: hit ratio and byte hit ratio from every response's
// Cache-Status, per PoP and per client region, and origin offload from the
// synthetic origin's own counters.
//
// Why a tool of our own: operators choose and tune a CDN by benchmarking it,
// and the usual glue (wrk for HTTP, dnsperf for DNS, scripts for the ratios)
// measures each hop apart, hides latency behind coordinated omission, and
// guesses the hit ratio. Run does it in one pass:
//
//   - Targets: a URL, or one PoP's address with the URL's Host
//     (Config.Connect), or a whole CDN (Config.DNS): each virtual client
//     gets a region and an address in its subnet (Config.Regions), resolves
//     the service hostname through the DNS server with that subnet as EDNS
//     Client Subnet (RFC 7871), connects to the PoP the answer names, and
//     resolves again when the answer's TTL runs out.
//   - Workloads ([Workload]): a fixed list, Zipf popularity over the
//     synthetic origin's objects (with popularity that shifts, and one-hit
//     wonders mixed in), or a recorded trace. A workload is a pure function
//     of the request's index and the seed, so runs are reproducible.
//   - Load: closed loop (each connection sends as soon as it has its
//     answer) or open loop at a fixed rate, where latency counts from the
//     time each request was due, not from when it could be sent, so a
//     server that stalls cannot hide the queue it causes (as in wrk2).
//   - Figures: HDR histograms of latency; results classified exactly as a
//     PoP's /stats counts them (see Classify), so the two can be compared.
//
// The HTTP/1.1 client is a lean one on net.Conn with bufio (keep-alive, one
// connection per virtual client, Content-Length and chunked bodies), with no
// per-request allocations on its hot path, so that the tool is not the
// bottleneck: it keeps up with wrk on the same core. It sits behind a small
// interface (client) so HTTP/2 and HTTP/3 can slot in.
package bench
