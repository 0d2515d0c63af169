// Package origin reaches a service's origin servers. A Pool sends each
// request to one server, chosen by a policy (round robin, smooth weighted
// round robin, least connections, weighted least connections, adaptive
// load, consistent hashing of the client or cache key, or peak-EWMA cost
// with two random choices), over a transport of that server's own (its
// keep-alive pool, connection cap and TLS), with connect, first-byte and
// idle-body timeouts. Failures are typed errors naming the server, which
// the PoP maps to 502 and 504 (400 and 408 for a client's fault); a
// failed connect of an idempotent, replayable request is retried once on
// another server. The request target's dot-segments ("..", also written
// "%2e%2e") are resolved before a server's path prefix is joined to it,
// so no target reaches above the prefix; response headers are bounded
// (Options.MaxHeaderBytes).
//
// Only the server's own failures count against it: no connection, a
// timeout of the pool's (connect, first byte, body idle), a broken or
// oversized response, a body cut short, and 502, 503 and 504 answers. A
// client fault never does: when the request body, which is the client's,
// fails to read (malformed chunking, the client went away, its read
// deadline passed), the error is of kind KindClient, which a proxy
// answers with 400 or 408, and the server keeps its failure count, its
// place in rotation and any trial. Nor does a caller that cancels its
// context. A caller's deadline counts as a timeout of the server only
// when it passes while the request, written in full, waits for the
// response header; during the response body it ends the body with a
// KindTimeout error but does not count, since the body may just be long.
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
