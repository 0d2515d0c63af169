package cache

import (
	"net/http"
	"slices"
	"strings"
)

// VaryFields returns the request header fields a response varies on, as
// canonical names, sorted and without duplicates (RFC 9110 §12.5.5). star
// reports "Vary: *", which no stored response can ever match.
func VaryFields(h http.Header) (fields []string, star bool) {
	for _, line := range h.Values("Vary") {
		for name := range strings.SplitSeq(line, ",") {
			name = strings.TrimSpace(name)
			switch {
			case name == "*":
				star = true
			case name != "" && isToken(name):
				fields = append(fields, http.CanonicalHeaderKey(name))
			}
		}
	}
	slices.Sort(fields)
	return slices.Compact(fields), star
}

// VariantKey is the key a variant is stored under: the URL's key, the
// variant index's nonce, and the request's normalized value of each field
// the response varies on (RFC 9111 §4.1).
func VariantKey(key, nonce string, fields []string, req http.Header) string {
	var b strings.Builder
	b.WriteString(key)
	b.WriteString("\x00")
	b.WriteString(nonce)
	for _, f := range fields {
		b.WriteString("\x00")
		b.WriteString(f)
		b.WriteString("=")
		b.WriteString(normalizeField(f, req.Values(f)))
	}
	return b.String()
}

// normalizeField folds a request field's values into the form variants are
// told apart by (RFC 9111 §4.1 allows combining field lines and normalizing
// whitespace and case where the field's syntax permits): Accept-Encoding to
// the coding the PoP would pick (br, gzip or identity), so variants do not
// explode; other fields combined into one list, "1, 2" and two lines "1"
// and "2" alike, with the whitespace around members dropped and inner runs
// collapsed. Accept-Language is lowercased too: language ranges are
// case-insensitive (RFC 4647 §2).
func normalizeField(name string, values []string) string {
	if name == "Accept-Encoding" {
		return NormalizeAcceptEncoding(values)
	}
	var members []string
	for _, line := range values {
		for member := range strings.SplitSeq(line, ",") {
			members = append(members, strings.Join(strings.Fields(member), " "))
		}
	}
	joined := strings.Join(members, ",")
	if name == "Accept-Language" {
		joined = strings.ToLower(joined)
	}
	return joined
}

// The content codings Accept-Encoding is folded to, in the order the folded
// value lists them. A client that accepts none of them is sent identity.
var foldedCodings = [...]string{"zstd", "br", "gzip", "deflate"}

// NormalizeAcceptEncoding folds Accept-Encoding to the set of codings, among
// zstd, br, gzip and deflate, that the client accepts with a non-zero
// weight, listed in that order ("zstd, br, gzip"), or "identity" when it
// accepts none of them. "*" accepts all four; x-gzip is gzip (RFC 9110
// §8.4.1.3). Weights among the accepted codings are not kept: any of them
// suits every client of the same set.
//
// The PoP asks the origin for exactly the folded value (see
// AcceptsEncoding), so whichever coding the origin picks from it, every
// client whose request folds to the same value can decode the response
// stored under it: a variant keyed by this value is never poisoned by an
// origin that prefers a coding another client cannot read.
func NormalizeAcceptEncoding(values []string) string {
	var accepted [len(foldedCodings)]bool
	star := false
	for _, line := range values {
		for member := range strings.SplitSeq(line, ",") {
			coding, params, _ := strings.Cut(member, ";")
			coding = strings.ToLower(strings.TrimSpace(coding))
			if coding == "x-gzip" {
				coding = "gzip"
			}
			if coding == "*" {
				star = !rejected(params)
				continue
			}
			for i, c := range foldedCodings {
				if coding == c {
					accepted[i] = !rejected(params)
				}
			}
		}
	}
	var b strings.Builder
	for i, c := range foldedCodings {
		if accepted[i] || star && !named(values, c) {
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteString(c)
		}
	}
	if b.Len() == 0 {
		return "identity"
	}
	return b.String()
}

// named reports whether an Accept-Encoding value names coding itself, so
// that "*" does not override an explicit "br;q=0".
func named(values []string, coding string) bool {
	for _, line := range values {
		for member := range strings.SplitSeq(line, ",") {
			c, _, _ := strings.Cut(member, ";")
			c = strings.ToLower(strings.TrimSpace(c))
			if c == coding || coding == "gzip" && c == "x-gzip" {
				return true
			}
		}
	}
	return false
}

// negotiated are the content codings clients negotiate with
// Accept-Encoding (RFC 9110 §8.4.1, the IANA registry, RFC 8878, RFC 7932,
// RFC 9842): a response in one of them that the request did not accept
// would be undecodable. A coding outside the list is opaque to the PoP,
// which stores and relays it as the origin sent it.
var negotiated = []string{"zstd", "br", "gzip", "x-gzip", "deflate", "compress", "x-compress", "dcb", "dcz"}

// AcceptsEncoding reports whether a response with the given
// Content-Encoding field values may be sent to a request whose
// Accept-Encoding folds to folded (see NormalizeAcceptEncoding): no coding,
// identity or a coding no client negotiates suits everyone; a negotiated
// coding must be alone and named in folded.
func AcceptsEncoding(folded string, contentEncoding []string) bool {
	var codings []string
	for _, line := range contentEncoding {
		for c := range strings.SplitSeq(line, ",") {
			if c = strings.ToLower(strings.TrimSpace(c)); c != "" && c != "identity" {
				codings = append(codings, c)
			}
		}
	}
	if !slices.ContainsFunc(codings, func(c string) bool { return slices.Contains(negotiated, c) }) {
		return true
	}
	switch len(codings) {
	case 1:
		if codings[0] == "x-gzip" {
			codings[0] = "gzip"
		}
		for c := range strings.SplitSeq(folded, ", ") {
			if c == codings[0] && c != "identity" {
				return true
			}
		}
	}
	return false
}

// rejected reports whether a member's parameters carry q=0.
func rejected(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
			v = strings.TrimSpace(v)
			return v == "0" || strings.Trim(v, "0.") == "" && strings.HasPrefix(v, "0")
		}
	}
	return false
}
