package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// This file is the generic half of the decoder: it walks yaml.Node trees,
// checks node kinds, keys and scalar values, and collects problems. Which
// keys exist where is in each section's file (see config.go).

// problem is one thing wrong with the file. Its message has the form
// "FILE:LINE: KEY: message"; LINE and KEY are left out when unknown.
type problem struct {
	file string
	line int
	key  string // dotted path, e.g. services[0].origin.servers[1].url
	msg  string
	err  error // the underlying error, if any
}

// Error formats the problem as "FILE:LINE: KEY: message".
func (p *problem) Error() string {
	var b strings.Builder
	b.WriteString(p.file)
	if p.line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(p.line))
	}
	b.WriteString(": ")
	if p.key != "" {
		b.WriteString(p.key)
		b.WriteString(": ")
	}
	b.WriteString(p.msg)
	return b.String()
}

// Unwrap returns the underlying error, if any.
func (p *problem) Unwrap() error { return p.err }

// maxVisits bounds the number of nodes the decoder visits. Aliases can make
// a small file expand to a huge tree ("billion laughs"); no real CDN
// description comes near this.
const maxVisits = 1 << 20

// maxProblems bounds the number of problems reported: past it, decoding
// stops with a note. A file with that many is better fixed in rounds.
const maxProblems = 1000

// A decodeFunc decodes the value node n found at path.
type decodeFunc func(n *yaml.Node, path string)

// A field is one known key of a mapping and how to decode its value.
type field struct {
	key      string
	required bool
	decode   decodeFunc
}

// required returns a field that must be present.
func required(key string, decode decodeFunc) field {
	return field{key: key, required: true, decode: decode}
}

// optional returns a field that may be left out, in which case the value
// keeps the default it was given before decoding.
func optional(key string, decode decodeFunc) field {
	return field{key: key, decode: decode}
}

// decoder walks a YAML node tree, recording every problem instead of
// stopping at the first one.
type decoder struct {
	file     string
	problems []*problem
	visits   int
	stopped  bool                // a budget is spent; decode and report nothing more
	note     *problem            // why decoding stopped early, reported last
	checked  map[*yaml.Node]bool // mappings already checked for duplicate keys
	dirs     map[string]seen     // cache directories claimed so far (disk.go)
}

func newDecoder(file string) *decoder {
	return &decoder{file: file, checked: make(map[*yaml.Node]bool), dirs: make(map[string]seen)}
}

// errorf records a problem at node n (which gives the line) and path.
func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.wrapf(n, path, nil, format, args...)
}

// wrapf records a problem that wraps err.
func (d *decoder) wrapf(n *yaml.Node, path string, err error, format string, args ...any) {
	if d.stopped {
		return
	}
	line := 0
	if n != nil {
		line = n.Line
	}
	d.problems = append(d.problems, &problem{file: d.file, line: line, key: path, msg: fmt.Sprintf(format, args...), err: err})
	if len(d.problems) == maxProblems {
		d.stopped = true
		d.note = &problem{file: d.file, line: line, msg: fmt.Sprintf("too many problems; stopped after %d", maxProblems)}
	}
}

// err joins the problems found, in line order, or returns nil.
func (d *decoder) err() error {
	if len(d.problems) == 0 {
		return nil
	}
	slices.SortStableFunc(d.problems, func(a, b *problem) int { return cmp.Compare(a.line, b.line) })
	errs := make([]error, 0, len(d.problems)+1)
	for _, p := range d.problems {
		errs = append(errs, p)
	}
	if d.note != nil {
		errs = append(errs, d.note)
	}
	return errors.Join(errs...)
}

// parseYAML parses data, which must hold exactly one YAML document, and
// returns the document's root node.
func parseYAML(name string, data []byte) (root *yaml.Node, err error) {
	// The YAML library reports errors by panicking internally and recovers
	// its own panics; anything else escaping it is a bug in the library, but
	// the file is operator input and a bad one must not crash the process.
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, &problem{file: name, msg: fmt.Sprintf("invalid YAML: the YAML parser failed: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &problem{file: name, msg: `file has no content, only comments (want a mapping with at least "services" and "pops")`}
		}
		return nil, yamlProblem(name, err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return nil, &problem{file: name, line: next.Line, msg: "a second YAML document (after ---); the file must hold exactly one"}
	} else if !errors.Is(err, io.EOF) {
		return nil, yamlProblem(name, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, &problem{file: name, line: doc.Line, msg: "invalid YAML: not a single document"}
	}
	root = doc.Content[0]
	if isNull(root) {
		return nil, &problem{file: name, line: root.Line, msg: `document is empty (want a mapping with at least "services" and "pops")`}
	}
	return root, nil
}

var yamlLineRE = regexp.MustCompile(`(?s)^yaml: line (\d+): (.*)$`)

// yamlProblem turns an error from the YAML library ("yaml: line 3: did not
// find expected key") into a problem with the file name and line.
func yamlProblem(name string, err error) *problem {
	p := &problem{file: name, err: err}
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		p.line, _ = strconv.Atoi(m[1])
		p.msg = "invalid YAML: " + m[2]
	} else {
		p.msg = "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")
	}
	return p
}

// node resolves aliases and counts n against the visit budget. It returns
// nil when the budget is spent.
func (d *decoder) node(n *yaml.Node, path string) *yaml.Node {
	if d.stopped || n == nil {
		return nil
	}
	// An alias always points at an anchored scalar, list or mapping; the
	// bound only guards against a future library change.
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 16; i++ {
		n = n.Alias
	}
	if n.Kind == yaml.AliasNode {
		d.errorf(n, path, "alias *%s cannot be resolved", n.Value)
		return nil
	}
	d.visits++
	if d.visits > maxVisits {
		d.errorf(n, path, "aliases expand the file to more than %d values; stopped here", maxVisits)
		d.stopped = true
		return nil
	}
	return n
}

// isNull reports whether n is an empty value ("key:", "~" or "null").
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// describe names what n is, for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.DocumentNode:
		return "a document"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if isNull(n) {
			return "an empty value"
		}
		v := n.Value
		if len(v) > 40 {
			v = v[:37] + "..."
		}
		return strconv.Quote(v)
	}
	return "an unknown YAML node"
}

// fields decodes the mapping n at path: each known key's value goes to its
// field's decode function; unknown keys, duplicate keys and missing required
// keys are problems. An empty value is taken as an empty mapping, so that a
// section whose settings are all commented out gets the defaults. Merge keys
// ("<<: *defaults") are honoured, with keys given explicitly taking
// precedence. fields reports whether n was a mapping.
func (d *decoder) fields(n *yaml.Node, path string, fields []field) bool {
	n = d.node(n, path)
	if n == nil {
		return false
	}
	var pairs []pair
	switch {
	case n.Kind == yaml.MappingNode:
		pairs = d.pairs(n, path, map[*yaml.Node]bool{})
	case isNull(n):
	default:
		d.errorf(n, path, "want a mapping (%s), got %s", keyList(fields), describe(n))
		return false
	}
	seen := make(map[string]bool, len(pairs))
	for _, p := range pairs {
		key := p.key.Value
		i := slices.IndexFunc(fields, func(f field) bool { return f.key == key })
		if i < 0 {
			d.errorf(p.key, join(path, key), "unknown key %q (%s)", key, suggest(key, fields))
			continue
		}
		seen[key] = true
		fields[i].decode(p.value, join(path, key))
	}
	for _, f := range fields {
		if f.required && !seen[f.key] && !d.stopped {
			d.errorf(n, join(path, f.key), "missing required key")
		}
	}
	return true
}

// pair is one key and its value in a mapping.
type pair struct{ key, value *yaml.Node }

// pairs returns the keys and values of mapping m: its own first, then those
// merged in with "<<" that it does not override. Duplicate keys and keys
// that are not strings are reported; merged is the set of mappings already
// merged, which stops merge cycles.
func (d *decoder) pairs(m *yaml.Node, path string, merged map[*yaml.Node]bool) []pair {
	merged[m] = true
	report := !d.checked[m]
	d.checked[m] = true
	var out []pair
	var merges []*yaml.Node
	at := make(map[string]int)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := d.node(m.Content[i], path)
		if k == nil {
			return out
		}
		switch {
		case k.Kind == yaml.ScalarNode && k.Tag == "!!merge":
			merges = append(merges, m.Content[i+1])
		case k.Kind != yaml.ScalarNode || isNull(k):
			if report {
				d.errorf(k, path, "keys must be strings, got %s", describe(k))
			}
		default:
			if first, dup := at[k.Value]; dup {
				if report {
					d.errorf(k, join(path, k.Value), "duplicate key %q (first at line %d)", k.Value, out[first].key.Line)
				}
				continue
			}
			at[k.Value] = len(out)
			out = append(out, pair{k, m.Content[i+1]})
		}
	}
	add := func(src *yaml.Node) {
		if merged[src] {
			return
		}
		for _, p := range d.pairs(src, path, merged) {
			if _, ok := at[p.key.Value]; !ok {
				at[p.key.Value] = len(out)
				out = append(out, p)
			}
		}
	}
	for _, v := range merges {
		src := d.node(v, join(path, "<<"))
		switch {
		case src == nil:
		case src.Kind == yaml.MappingNode:
			add(src)
		case src.Kind == yaml.SequenceNode:
			for _, item := range src.Content {
				if s := d.node(item, join(path, "<<")); s != nil && s.Kind == yaml.MappingNode {
					add(s)
				} else if s != nil {
					d.errorf(s, join(path, "<<"), "merge (<<) wants a mapping or a list of mappings, got %s in the list", describe(s))
				}
			}
		default:
			d.errorf(src, join(path, "<<"), "merge (<<) wants a mapping or a list of mappings, got %s", describe(src))
		}
	}
	return out
}

// list returns the items of the list n, unresolved. An empty value is an
// empty list. ok is false (and a problem recorded) if n is not a list.
func (d *decoder) list(n *yaml.Node, path string) (items []*yaml.Node, ok bool) {
	n = d.node(n, path)
	switch {
	case n == nil:
		return nil, false
	case n.Kind == yaml.SequenceNode:
		return n.Content, true
	case isNull(n):
		return nil, true
	}
	d.errorf(n, path, "want a list, got %s", describe(n))
	return nil, false
}

// scalar returns the scalar node n resolves to, recording a problem (which
// says the value should be want) when n is not a scalar or is empty.
func (d *decoder) scalar(n *yaml.Node, path, want string) (*yaml.Node, bool) {
	n = d.node(n, path)
	switch {
	case n == nil:
		return nil, false
	case n.Kind != yaml.ScalarNode:
		d.errorf(n, path, "want %s, got %s", want, describe(n))
		return nil, false
	case isNull(n):
		d.errorf(n, path, "no value given (want %s)", want)
		return nil, false
	}
	return n, true
}

// str decodes a string. Numbers are accepted as their text, so that, for
// example, a numeric token need not be quoted.
func (d *decoder) str(n *yaml.Node, path string) (string, bool) {
	s, ok := d.scalar(n, path, "a string")
	if !ok {
		return "", false
	}
	return s.Value, true
}

// setString returns a decodeFunc that stores a string in dst.
func (d *decoder) setString(dst *string) decodeFunc {
	return func(n *yaml.Node, path string) {
		if s, ok := d.str(n, path); ok {
			*dst = s
		}
	}
}

// duration decodes a Go duration string such as "30s" or "1h30m"; negative
// durations are problems.
func (d *decoder) duration(n *yaml.Node, path string) (time.Duration, bool) {
	s, ok := d.scalar(n, path, `a duration such as "30s"`)
	if !ok {
		return 0, false
	}
	v, err := time.ParseDuration(s.Value)
	if err != nil {
		hint := "want e.g. 500ms, 30s, 5m, 1h"
		switch {
		case s.Tag == "!!int":
			hint = fmt.Sprintf(`a duration needs a unit, e.g. "%ss"`, s.Value)
		case strings.HasSuffix(s.Value, "d"):
			hint = `the largest unit is h, e.g. "24h"`
		}
		d.wrapf(s, path, err, "invalid duration %q (%s)", s.Value, hint)
		return 0, false
	}
	if v < 0 {
		d.errorf(s, path, "duration %q must not be negative", s.Value)
		return 0, false
	}
	return v, true
}

// formatDuration writes v without trailing zero units: "1h", not "1h0m0s".
func formatDuration(v time.Duration) string {
	s := v.String()
	if t, ok := strings.CutSuffix(s, "m0s"); ok {
		s = t + "m"
	}
	if t, ok := strings.CutSuffix(s, "h0m"); ok {
		s = t + "h"
	}
	return s
}

// setDuration returns a decodeFunc that stores a duration >= 0 in dst.
func (d *decoder) setDuration(dst *time.Duration) decodeFunc {
	return func(n *yaml.Node, path string) {
		if v, ok := d.duration(n, path); ok {
			*dst = v
		}
	}
}

// setTimeout returns a decodeFunc that stores a duration > 0 in dst.
// Timeouts may not be zero: in net/http zero means "none", which is never
// what an edge server wants.
func (d *decoder) setTimeout(dst *time.Duration) decodeFunc {
	return d.setPositive(dst, "timeout")
}

// setPositive returns a decodeFunc that stores a duration > 0 in dst; what
// names the setting in the message.
func (d *decoder) setPositive(dst *time.Duration, what string) decodeFunc {
	return func(n *yaml.Node, path string) {
		v, ok := d.duration(n, path)
		switch {
		case !ok:
		case v == 0:
			d.errorf(n, path, "%s must be positive (remove the key for the default)", what)
		default:
			*dst = v
		}
	}
}

// setSize returns a decodeFunc that stores in dst a size of at least min
// bytes, given as a ParseSize string or a plain YAML integer of bytes.
func (d *decoder) setSize(dst *int64, min int64) decodeFunc {
	return d.setSizeRange(dst, min, math.MaxInt64)
}

// setSizeRange is setSize with an upper bound of max bytes.
func (d *decoder) setSizeRange(dst *int64, min, max int64) decodeFunc {
	return func(n *yaml.Node, path string) {
		s, ok := d.scalar(n, path, `a size such as "64MiB"`)
		if !ok {
			return
		}
		var v int64
		var err error
		if s.Tag == "!!int" {
			// A plain integer is bytes; let YAML read it so 0x… forms work.
			if err = s.Decode(&v); err == nil && v < 0 {
				err = errors.New("size must not be negative")
			}
		} else {
			v, err = parseSize(s.Value)
		}
		switch {
		case err != nil:
			d.wrapf(s, path, err, "invalid size %q: %v", s.Value, err)
		case v < min:
			d.errorf(s, path, "size %s is too small (want at least %s)", s.Value, formatSize(min))
		case v > max:
			d.errorf(s, path, "size %s is too large (want at most %s)", s.Value, formatSize(max))
		default:
			*dst = v
		}
	}
}

// setInt returns a decodeFunc that stores in dst an integer in [lo, hi].
func (d *decoder) setInt(dst *int, lo, hi int) decodeFunc {
	return func(n *yaml.Node, path string) {
		s, ok := d.scalar(n, path, "a whole number")
		if !ok {
			return
		}
		var v int64
		if s.Tag != "!!int" || s.Decode(&v) != nil {
			d.errorf(s, path, "want a whole number, got %s", describe(s))
			return
		}
		if v < int64(lo) || v > int64(hi) {
			d.errorf(s, path, "%s is out of range (want %d..%d)", s.Value, lo, hi)
			return
		}
		*dst = int(v)
	}
}

// setFloat returns a decodeFunc that stores in dst a number in [lo, hi].
func (d *decoder) setFloat(dst *float64, lo, hi float64) decodeFunc {
	return func(n *yaml.Node, path string) {
		s, ok := d.scalar(n, path, "a number")
		if !ok {
			return
		}
		var v float64
		if (s.Tag != "!!int" && s.Tag != "!!float") || s.Decode(&v) != nil {
			d.errorf(s, path, "want a number, got %s", describe(s))
			return
		}
		if !(v >= lo && v <= hi) || math.IsNaN(v) {
			d.errorf(s, path, "%s is out of range (want %g..%g)", s.Value, lo, hi)
			return
		}
		*dst = v
	}
}

// setBool returns a decodeFunc that stores true or false in dst.
func (d *decoder) setBool(dst *bool) decodeFunc {
	return func(n *yaml.Node, path string) {
		s, ok := d.scalar(n, path, "true or false")
		if !ok {
			return
		}
		var v bool
		if s.Tag != "!!bool" || s.Decode(&v) != nil {
			d.errorf(s, path, "want true or false, got %s", describe(s))
			return
		}
		*dst = v
	}
}

// join appends key to the dotted path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// index appends a list index to path.
func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// keyList names the keys of fields, for messages.
func keyList(fields []field) string {
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	return "keys " + strings.Join(keys, ", ")
}

// suggest returns the known key closest to an unknown one ("did you mean
// …?"), or the list of known keys when none is close.
func suggest(key string, fields []field) string {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }
	best, bestDist := "", math.MaxInt
	for _, f := range fields {
		if dist := editDistance(norm(key), f.key); dist < bestDist {
			best, bestDist = f.key, dist
		}
	}
	limit := 1
	if len(key) > 4 {
		limit = 2
	}
	if best != "" && bestDist <= limit {
		return fmt.Sprintf("did you mean %q?", best)
	}
	return "want " + keyList(fields)
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 { // keys are short; don't spend time on junk
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
