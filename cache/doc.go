// Package cache holds Outpost's HTTP caching rules as pure code, apart from
// any storage: the cache key, the Cache-Control grammar, whether a response
// may be stored and why not (RFC 9111 §3), its freshness lifetime and age
// (§4.2), and the Cache-Status header that reports each decision to the
// client (RFC 9211).
//
// Every rule is a function of the request, the response and the time, so it
// can be tested without a network and reused by every protocol the PoP
// speaks. The Store interface is the seam to whatever holds entries (a
// store reports its evictions through RemovalNotifier, so an index kept
// beside it stays true); package memstore implements it on ristretto.
package cache
