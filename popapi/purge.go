package popapi

// PurgeRequest is the body of POST /purge on a PoP's admin listener, sent
// with Authorization: Bearer <purge.token>. Exactly one of URL, Prefix and
// Tag is set.
type PurgeRequest struct {
	// ID names the purge so that a retried request is applied once. The
	// PoP remembers the last few thousand IDs.
	ID string `json:"id"`
	// URL purges one URL (every variant, under http and https). Its host,
	// without port, selects the service.
	URL string `json:"url,omitempty"`
	// Prefix purges every URL that starts with it (scheme ignored: both
	// are purged).
	Prefix string `json:"prefix,omitempty"`
	// Tag purges every object whose Surrogate-Key or Cache-Tag named it.
	Tag string `json:"tag,omitempty"`
	// Soft marks the objects stale instead of deleting them, so the next
	// request revalidates and stale-if-error can still serve them.
	Soft bool `json:"soft,omitempty"`
}

// PurgeResult is the PoP's acknowledgement of a purge: the answer to POST
// /purge.
type PurgeResult struct {
	ID        string `json:"id"`
	PoP       string `json:"pop"`
	Kind      string `json:"kind"` // url, prefix or tag
	Soft      bool   `json:"soft"`
	Purged    int    `json:"purged"`    // objects deleted or marked stale
	Duplicate bool   `json:"duplicate"` // the ID was applied before; nothing done now
}
