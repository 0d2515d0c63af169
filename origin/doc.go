// Package origin reaches a service's origin servers. A Pool sends each
// request to one server, chosen by a policy (round robin, smooth weighted
// round robin, least connections, weighted least connections, adaptive
// load, consistent hashing of the client or cache key, or peak-EWMA cost
// with two random choices), over a transport of that server's own (its
// keep-alive pool, connection cap and TLS), with connect, first-byte and
// idle-body timeouts. Failures are typed errors naming the server, which
// the PoP maps to 502 and 504; a failed connect of an idempotent,
// replayable request is retried once on another server.
//
// Each server keeps atomic counters (requests, failures, in flight,
// response times) that Stats reports. A server that fails several requests
// in a row is ejected for a cool-down, after which one trial request
// decides whether it is back; optional active health checks take servers
// out and in by rise and fall. When no server is left, the pool still
// tries the one that failed least recently, and says so.
//
// The package also owns the list of hop-by-hop header fields that never
// cross a proxy.
package origin
