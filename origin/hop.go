package origin

import (
	"net/http"
	"net/textproto"
	"strings"
)

// HopByHop lists the header fields that describe one connection, not the
// message (RFC 9110 §7.6.1), and so are never forwarded by a proxy.
var HopByHop = []string{
	"Connection",
	"Keep-Alive",
	"Proxy-Connection",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

// RemoveHopByHop deletes the hop-by-hop fields from h, including every field
// that a Connection field names.
func RemoveHopByHop(h http.Header) {
	for _, line := range h.Values("Connection") {
		for name := range strings.SplitSeq(line, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range HopByHop {
		h.Del(name)
	}
}
