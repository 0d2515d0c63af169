package cache

import (
	"net/url"
	"slices"
	"strings"
)

// QueryPolicy says how a request's query string becomes part of the key.
type QueryPolicy struct {
	// Sort orders the parameters, so ?a=1&b=2 and ?b=2&a=1 share an entry.
	Sort bool
	// Drop lists parameter names left out of the key (tracking parameters
	// such as utm_source). They are still sent to the origin.
	Drop []string
}

// Key returns the cache key of a request: scheme, host (lowercased, without
// port), escaped path and normalized query. http and https stay separate
// keys; HTTP versions and listener ports never split the cache.
func Key(scheme, host, escapedPath, rawQuery string, q QueryPolicy) string {
	if escapedPath == "" {
		escapedPath = "/"
	}
	query := NormalizeQuery(rawQuery, q)
	var b strings.Builder
	b.Grow(len(scheme) + 3 + len(host) + len(escapedPath) + 1 + len(query))
	b.WriteString(scheme)
	b.WriteString("://")
	b.WriteString(host)
	b.WriteString(escapedPath)
	if query != "" {
		b.WriteByte('?')
		b.WriteString(query)
	}
	return b.String()
}

// NormalizeQuery applies q to a raw query string. Parameters keep their
// original encoding; empty members (from "&&") are removed.
func NormalizeQuery(rawQuery string, q QueryPolicy) string {
	if rawQuery == "" || (!q.Sort && len(q.Drop) == 0) {
		return rawQuery
	}
	params := strings.Split(rawQuery, "&")
	kept := params[:0]
	for _, p := range params {
		if p == "" {
			continue
		}
		if len(q.Drop) > 0 && slices.Contains(q.Drop, paramName(p)) {
			continue
		}
		kept = append(kept, p)
	}
	if q.Sort {
		slices.Sort(kept)
	}
	return strings.Join(kept, "&")
}

// paramName returns the decoded name of one "name=value" query member.
func paramName(member string) string {
	name, _, _ := strings.Cut(member, "=")
	if decoded, err := url.QueryUnescape(name); err == nil {
		return decoded
	}
	return name
}
