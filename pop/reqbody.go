package pop

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/outpost-cdn/outpost/cache"
	"github.com/outpost-cdn/outpost/origin"
)

// requestBody prepares a client's request body for the origin. Up to
// limits.request_buffer bytes are read before the origin is contacted,
// within timeouts.request_body, so a client that sends slowly holds no
// origin connection; the rest, if any, streams after them with the same
// timeout for each pause. The buffer comes from the in-flight budget; when
// the budget has none to spare the body streams from the start. release
// gives the buffer back once the origin exchange is over.
func (p *PoP) requestBody(w http.ResponseWriter, r *http.Request) (body io.Reader, length int64, release func(), err error) {
	rc := http.NewResponseController(w)
	timeout := p.cfg.Timeouts.RequestBody
	stream := &deadlineBody{body: r.Body, rc: rc, timeout: timeout}
	release = func() {}
	want := p.cfg.Limits.RequestBuffer
	if r.ContentLength >= 0 && r.ContentLength < want {
		want = r.ContentLength
	}
	if want <= 0 || !p.inflight.TryTake(want) {
		return stream, r.ContentLength, release, nil
	}
	release = func() { p.inflight.Give(want) }
	if timeout > 0 {
		_ = rc.SetReadDeadline(time.Now().Add(timeout))
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, want))
	// A deadline left behind would fail net/http's own read that watches
	// for the client going away.
	_ = rc.SetReadDeadline(time.Time{})
	if err != nil {
		return nil, 0, release, &clientBodyError{err: err}
	}
	if int64(len(data)) < want || int64(len(data)) == r.ContentLength {
		return bytes.NewReader(data), int64(len(data)), release, nil
	}
	return io.MultiReader(bytes.NewReader(data), stream), r.ContentLength, release, nil
}

// deadlineBody reads a request body with a deadline for each read.
type deadlineBody struct {
	body    io.Reader
	rc      *http.ResponseController
	timeout time.Duration
}

func (d *deadlineBody) Read(p []byte) (int, error) {
	if d.timeout > 0 {
		_ = d.rc.SetReadDeadline(time.Now().Add(d.timeout))
	}
	n, err := d.body.Read(p)
	if err != nil {
		_ = d.rc.SetReadDeadline(time.Time{})
		if err != io.EOF {
			err = &clientBodyError{err: err}
		}
	}
	return n, err
}

// clientBodyError is a failure to read the client's request body:
// malformed chunking, a body cut short, a client too slow.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string { return "pop: reading the request body: " + e.err.Error() }
func (e *clientBodyError) Unwrap() error { return e.err }

// clientFault reports whether err is the client's doing, not the origin's.
func clientFault(err error) bool {
	if _, ok := errors.AsType[*clientBodyError](err); ok {
		return true
	}
	oe, ok := errors.AsType[*origin.Error](err)
	return ok && oe.Kind == origin.KindClient
}

// clientBodyFailed answers a request whose body could not be read: 408
// when the client was too slow, 413 past a size limit, else 400. No origin
// is blamed for it.
func (p *PoP) clientBodyFailed(w http.ResponseWriter, r *http.Request, svc *service, status cache.Status, err error) {
	code := http.StatusBadRequest
	var tooLarge *http.MaxBytesError
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		code = http.StatusRequestTimeout
	case errors.As(err, &tooLarge):
		code = http.StatusRequestEntityTooLarge
	}
	// net/http cancels the request's context on any failed body read, the
	// read deadline's included: a client too slow is still there to be
	// told 408 (hostile_test.go: it got no answer at all).
	if r.Context().Err() != nil && code != http.StatusRequestTimeout {
		svc.stats.record(r, 0, resultError, 0)
		return
	}
	status.Detail = "client-body"
	p.log.Debug("request body failed", "service", svc.name, "status", code, "err", err)
	if r.ProtoMajor == 1 {
		// What is left of the body on the connection is unknown: it
		// closes. An HTTP/2 or HTTP/3 stream fails alone (a Connection
		// field there would end every stream of the connection, or be
		// malformed: RFC 9113 §8.2.2, RFC 9114 §4.2).
		w.Header().Set("Connection", "close")
	}
	p.plainError(w, r, svc, code, status, "outpost: "+http.StatusText(code)+": the request body could not be read\n")
}
