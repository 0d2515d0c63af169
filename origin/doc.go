// Package origin reaches a service's origin servers: the Pool sends each
// request to one of them (round robin for now), with connect, first-byte
// and idle-body timeouts, and reports failures as typed errors the PoP maps
// to 502 and 504. It also owns the list of hop-by-hop header fields that
// never cross a proxy.
package origin
