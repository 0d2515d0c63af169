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

// NormalizeAcceptEncoding reduces Accept-Encoding to br, gzip or identity:
// the best coding the client accepts with a non-zero weight.
func NormalizeAcceptEncoding(values []string) string {
	var br, gzip bool
	for _, line := range values {
		for member := range strings.SplitSeq(line, ",") {
			coding, params, _ := strings.Cut(member, ";")
			coding = strings.ToLower(strings.TrimSpace(coding))
			if rejected(params) {
				continue
			}
			switch coding {
			case "br":
				br = true
			case "gzip", "x-gzip":
				gzip = true
			case "*":
				br, gzip = true, true
			}
		}
	}
	switch {
	case br:
		return "br"
	case gzip:
		return "gzip"
	}
	return "identity"
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
