package synthetic

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The paths of the origin's own endpoints. Requests under adminPrefix are
// probes and are never counted as content requests.
const (
	adminPrefix = "/_origin/"
	statsPath   = "/_origin/stats"
	loadPath    = "/_origin/load"
	healthPath  = "/_origin/health"
	objPrefix   = "/obj/"
)

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	switch path := r.URL.Path; {
	case path == statsPath:
		s.serveStats(w, r)
	case path == loadPath:
		s.serveLoad(w, r)
	case path == healthPath:
		if !allow(w, r, http.MethodGet, http.MethodHead) {
			return
		}
		adminText(w, http.StatusOK, "ok\n")
	case strings.HasPrefix(path, adminPrefix):
		adminText(w, http.StatusNotFound, "synthetic: no such endpoint\n")
	default:
		s.serveContent(w, r)
	}
}

// serveContent answers a content request: it applies the faults, then
// serves /obj/{id} or 404.
func (s *Server) serveContent(w http.ResponseWriter, r *http.Request) {
	s.stats.count(r.URL.Path)
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	if s.onContent != nil {
		s.onContent(r)
	}
	bw := &bodyWriter{ResponseWriter: w, ctx: r.Context(), stats: s.stats, head: r.Method == http.MethodHead}

	p, err := parseParams(r.URL.Query())
	if err != nil {
		s.plain(bw, http.StatusBadRequest, err.Error(), params{})
		return
	}
	bw.pause = p.slow
	if !sleep(r.Context(), s.latency()+p.delay) {
		return // the client went away
	}
	if s.injectError() {
		s.plain(bw, http.StatusServiceUnavailable, "synthetic: injected error (error rate)", p)
		return
	}
	if p.status != 0 {
		s.plain(bw, p.status, "synthetic: status "+strconv.Itoa(p.status)+" as asked", p)
		return
	}
	id, ok := strings.CutPrefix(r.URL.Path, objPrefix)
	if !ok || id == "" {
		s.plain(bw, http.StatusNotFound, "synthetic: not found; objects are at /obj/{id}", p)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		bw.Header().Set("Allow", "GET, HEAD")
		s.plain(bw, http.StatusMethodNotAllowed, "synthetic: objects take GET and HEAD", p)
		return
	}
	s.serveObject(bw, r, id, p)
}

// serveObject answers GET or HEAD /obj/{id}. http.ServeContent evaluates
// the preconditions (RFC 9110 §13.2.2: If-Match, If-Unmodified-Since,
// If-None-Match with weak comparison, If-Modified-Since only without
// If-None-Match, If-Range with strong comparison) and the ranges (§14:
// 206, multipart/byteranges, 416 with "bytes */size"). Where it departs
// from RFC 9110, the request is adjusted first; see rangeHeader.
func (s *Server) serveObject(w *bodyWriter, r *http.Request, id string, p params) {
	hash := idHash(id)
	size := p.size
	if size < 0 {
		size = sizeOf(hash)
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	s.setCaching(h, p, s.cc)
	switch {
	case !p.hasETag:
		h.Set("Etag", etag(hash, size))
	case p.etag != "":
		h.Set("Etag", p.etag)
	}
	modtime := lastModified(hash)
	obj := newObject(hash, size)
	if p.reset {
		s.serveReset(w, r, obj, modtime)
		return
	}
	if v, ok := rangeHeader(r); !ok {
		r2 := *r
		r2.Header = r.Header.Clone()
		if v == "" {
			r2.Header.Del("Range")
		} else {
			r2.Header.Set("Range", v)
		}
		r = &r2
	}
	http.ServeContent(w, r, "", modtime, io.NewSectionReader(obj, 0, size))
}

// rangeHeader returns the Range header http.ServeContent should see, and
// false if that differs from the request's. It closes three gaps between
// ServeContent and RFC 9110 §14:
//   - ranges apply to GET only (§14.2: "A server MUST ignore a Range header
//     field received with a request method [...] for which range handling
//     is not defined"), but ServeContent answers HEAD with 206;
//   - an unknown range unit must be ignored (§14.2), but ServeContent
//     answers it with 416;
//   - range units are case-insensitive (§14.1), but ServeContent only
//     knows "bytes=".
func rangeHeader(r *http.Request) (string, bool) {
	v := r.Header.Get("Range")
	if v == "" {
		return "", true
	}
	if r.Method != http.MethodGet {
		return "", false
	}
	unit, spec, ok := strings.Cut(v, "=")
	switch {
	case !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes"):
		return "", false
	case unit != "bytes":
		return "bytes=" + spec, false
	}
	return v, true
}

// serveReset sends the header and the first half of the body, then resets
// the connection (SO_LINGER 0 and close, so the client sees ECONNRESET, or
// a truncated body if the RST loses the race with its read).
func (s *Server) serveReset(w *bodyWriter, r *http.Request, obj *object, modtime time.Time) {
	h := w.Header()
	h.Set("Last-Modified", modtime.UTC().Format(http.TimeFormat))
	h.Set("Content-Length", strconv.FormatInt(obj.size, 10))
	w.WriteHeader(http.StatusOK)
	if !w.head {
		half := obj.size / 2
		if _, err := io.Copy(w, io.NewSectionReader(obj, 0, half)); err != nil {
			return
		}
	}
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		return
	}
	conn, _, err := rc.Hijack()
	if err != nil {
		s.log.Debug("origin reset: cannot hijack; closing normally", "err", err)
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

// setCaching sets the caching headers of a content response: Cache-Control
// from ?cc= if given (empty: none), else def (empty: none); Vary from
// ?vary=; Surrogate-Key from ?tag=.
func (s *Server) setCaching(h http.Header, p params, def string) {
	cc := def
	if p.hasCC {
		cc = p.cc
	}
	if cc != "" {
		h.Set("Cache-Control", cc)
	}
	if p.vary != "" {
		h.Set("Vary", p.vary)
	}
	if p.tags != "" {
		h.Set("Surrogate-Key", p.tags)
	}
}

// plain answers a content request with code and a one-line text body.
// Such answers (faults, errors, 404) are "Cache-Control: no-store" unless
// ?cc= says otherwise, so an injected 503 never poisons a cache by accident.
func (s *Server) plain(w *bodyWriter, code int, msg string, p params) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	s.setCaching(h, p, "no-store")
	body := msg + "\n"
	if !bodyAllowed(code) {
		w.WriteHeader(code)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	if !w.head {
		io.WriteString(w, body)
	}
}

// bodyAllowed reports whether a response with status code may have content
// (RFC 9110 §15.3.5, §15.4.5).
func bodyAllowed(code int) bool {
	return code != http.StatusNoContent && code != http.StatusNotModified && code >= 200
}

// serveStats answers /_origin/stats: GET returns the counters as JSON;
// POST, or GET with ?reset=1, returns them and zeroes them.
func (s *Server) serveStats(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet, http.MethodHead, http.MethodPost) {
		return
	}
	reset := r.Method == http.MethodPost
	if v := r.URL.Query().Get("reset"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			adminText(w, http.StatusBadRequest, "synthetic: bad reset "+strconv.Quote(v)+": want 1 or 0\n")
			return
		}
		reset = b
	}
	body, err := json.Marshal(s.stats.snapshot(reset))
	if err != nil {
		adminText(w, http.StatusInternalServerError, err.Error()+"\n")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	w.Write(append(body, '\n'))
}

// serveLoad answers /_origin/load. GET returns the load figure as a bare
// number (no newline) for pollers; PUT ?value=X sets it, and PUT without a
// value, or DELETE, goes back to counting in-flight requests.
func (s *Server) serveLoad(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete) {
		return
	}
	switch r.Method {
	case http.MethodPut:
		v := r.URL.Query().Get("value")
		if v == "" {
			s.ClearLoad()
			break
		}
		f, err := strconv.ParseFloat(v, 64)
		if err == nil {
			err = s.SetLoad(f)
		}
		if err != nil {
			adminText(w, http.StatusBadRequest, "synthetic: bad value "+strconv.Quote(v)+": want a finite number ≥ 0\n")
			return
		}
	case http.MethodDelete:
		s.ClearLoad()
	}
	adminText(w, http.StatusOK, strconv.FormatFloat(s.Load(), 'g', -1, 64))
}

// allow answers 405 and returns false unless r's method is one of methods.
func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	adminText(w, http.StatusMethodNotAllowed, "synthetic: method not allowed\n")
	return false
}

// adminText answers an /_origin/ request with a text body, never cached.
func adminText(w http.ResponseWriter, code int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	io.WriteString(w, body)
}
