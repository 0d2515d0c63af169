package bench

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/outpost-cdn/outpost/origin/synthetic"
)

// A Workload decides which request a run sends k-th. Request k (counted
// from 0 over the whole run, warm-up included) is a pure function of k, the
// workload's seed and, for workloads that shift with time, the time since
// the run began; so runs with the same seed send the same requests, however
// the virtual clients interleave. Implementations must be safe for
// concurrent use.
type Workload interface {
	// Next appends the path and query of request k to dst and returns the
	// extended slice. ok is false when there is no request k (a trace has
	// ended).
	Next(dst []byte, k uint64, elapsed time.Duration) (path []byte, ok bool)
	// Name describes the workload in reports.
	Name() string
}

// A Paced workload may carry its own timing, as a trace with timestamps
// does: when Timed is true, request k is due At(k) after the run starts,
// and Run replays the workload open loop at that pace unless Config.Rate
// is set.
type Paced interface {
	Workload
	Timed() bool
	At(k uint64) time.Duration
}

// DefaultPathTemplate is the path of the synthetic origin's objects that
// Zipf and one-hit-wonder workloads request; with a fixed size it is
// DefaultSizedPathTemplate.
const (
	DefaultPathTemplate      = "/obj/{id}"
	DefaultSizedPathTemplate = "/obj/{id}?size={size}"
)

// template is a compiled path template: literal text with {id} and {size}
// placeholders.
type template struct {
	parts   []templatePart
	hasSize bool
}

type templatePart struct {
	lit  string
	kind byte // 0: literal, 'i': {id}, 's': {size}
}

// compileTemplate checks a path template: it starts with "/", names {id},
// may name {size}, and has no spaces or control characters.
func compileTemplate(s string) (template, error) {
	var t template
	if !strings.HasPrefix(s, "/") {
		return t, fmt.Errorf("path template %q does not start with /", s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return t, fmt.Errorf("path template %q has a space or control character", s)
		}
	}
	hasID := false
	for rest := s; rest != ""; {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			t.parts = append(t.parts, templatePart{lit: rest})
			break
		}
		if open > 0 {
			t.parts = append(t.parts, templatePart{lit: rest[:open]})
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return t, fmt.Errorf("path template %q has an unclosed {", s)
		}
		switch name := rest[open+1 : open+end]; name {
		case "id":
			t.parts = append(t.parts, templatePart{kind: 'i'})
			hasID = true
		case "size":
			t.parts = append(t.parts, templatePart{kind: 's'})
			t.hasSize = true
		default:
			return t, fmt.Errorf("path template %q: unknown placeholder {%s}: want {id} or {size}", s, name)
		}
		rest = rest[open+end+1:]
	}
	if !hasID {
		return t, fmt.Errorf("path template %q does not contain {id}", s)
	}
	return t, nil
}

// expand appends the template with id and size filled in; a size < 0
// means the synthetic origin's own size for the id (SizeOf).
func (t *template) expand(dst, id []byte, size int64) []byte {
	for _, p := range t.parts {
		switch p.kind {
		case 0:
			dst = append(dst, p.lit...)
		case 'i':
			dst = append(dst, id...)
		case 's':
			if size < 0 {
				size = synthetic.SizeOf(string(id))
			}
			dst = strconv.AppendInt(dst, size, 10)
		}
	}
	return dst
}

// pathTemplate picks and compiles the template of a synthetic workload.
func pathTemplate(s string, size int64) (template, error) {
	if s == "" {
		s = DefaultPathTemplate
		if size > 0 {
			s = DefaultSizedPathTemplate
		}
	}
	t, err := compileTemplate(s)
	if err != nil {
		return t, err
	}
	if size > 0 && !t.hasSize {
		return t, fmt.Errorf("a fixed size needs {size} in the path template %q (e.g. %s)", s, DefaultSizedPathTemplate)
	}
	return t, nil
}

// fixedPath is the workload of a bare URL: the same path every time.
type fixedPath string

func (f fixedPath) Next(dst []byte, _ uint64, _ time.Duration) ([]byte, bool) {
	return append(dst, f...), true
}

func (f fixedPath) Name() string { return "fixed " + string(f) }

// Fixed returns the workload that requests the same path (and query) every
// time.
func Fixed(path string) Workload { return fixedPath(path) }
