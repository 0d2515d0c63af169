package config

import (
	"mime"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// This file is a service's compress section: which origin responses the
// PoP compresses for clients that accept it (pop/compress.go does it).

// The codecs a PoP compresses with, in its default order of preference.
const (
	CodecZstd = "zstd"
	CodecBr   = "br"
	CodecGzip = "gzip"
)

// Defaults and bounds of compression.
const (
	defaultCompressMin = 1 << 10 // 1 KiB: smaller bodies gain less than a packet
	defaultCompressMax = 8 << 20 // 8 MiB
	maxCompressMax     = 1 << 30
	maxCompressWorkers = 1024
)

// DefaultCompressTypes are the media types compressed when the section
// names none: text, and the structured and script types that are text.
var DefaultCompressTypes = []string{
	"text/*", "application/javascript", "application/json", "application/*+json",
	"application/xml", "application/*+xml", "application/manifest+json",
	"application/wasm", "image/svg+xml", "image/x-icon", "font/ttf", "font/otf",
}

// Compress makes the PoP compress uncompressed responses of the listed
// media types for clients that accept it. The zero value (no compress
// section) means off.
type Compress struct {
	Enabled bool
	// Types are media types, each exact (application/json) or with a
	// wildcard subtype (text/*) or suffix (application/*+json); default
	// DefaultCompressTypes.
	Types []string
	// MinSize and MaxSize bound the Content-Length of what is compressed;
	// default 1 KiB and 8 MiB. A response without a Content-Length
	// (chunked) is compressed, within the service's max_object.
	MinSize, MaxSize int64
	// Codecs in order of preference, among zstd, br and gzip; default all
	// three in that order.
	Codecs []string
	// Concurrency bounds the service's compressions running at once; a
	// fill that finds every slot taken is stored uncompressed. 0 (the
	// default) means the number of CPUs.
	Concurrency int
}

// compress decodes a service's compress section.
func (d *decoder) compress(n *yaml.Node, path string, c *Compress) {
	*c = Compress{Enabled: true, MinSize: defaultCompressMin, MaxSize: defaultCompressMax,
		Types: DefaultCompressTypes, Codecs: []string{CodecZstd, CodecBr, CodecGzip}}
	var minAt *yaml.Node
	ok := d.fields(n, path, []field{
		optional("types", func(n *yaml.Node, path string) {
			items, ok := d.list(n, path)
			if !ok {
				return
			}
			c.Types = nil
			for i, item := range items {
				p := index(path, i)
				s, ok := d.str(item, p)
				if !ok {
					continue
				}
				s = strings.ToLower(strings.TrimSpace(s))
				mt, _, err := mime.ParseMediaType(strings.Replace(s, "*", "x", -1))
				if err != nil || !strings.Contains(mt, "/") || strings.Count(s, "*") > 1 {
					d.errorf(item, p, "%q is not a media type (text/css, text/*, application/*+json)", s)
					continue
				}
				c.Types = append(c.Types, s)
			}
			if len(c.Types) == 0 {
				d.errorf(n, path, "at least one media type is required (or leave types out for the defaults)")
			}
		}),
		optional("min_size", func(n *yaml.Node, path string) {
			minAt = n
			d.setSizeRange(&c.MinSize, 0, maxCompressMax)(n, path)
		}),
		optional("max_size", d.setSizeRange(&c.MaxSize, 1, maxCompressMax)),
		optional("codecs", func(n *yaml.Node, path string) {
			items, ok := d.list(n, path)
			if !ok {
				return
			}
			c.Codecs = nil
			for i, item := range items {
				p := index(path, i)
				s, ok := d.str(item, p)
				if !ok {
					continue
				}
				switch {
				case s != CodecZstd && s != CodecBr && s != CodecGzip:
					d.errorf(item, p, "unknown codec %q (want zstd, br or gzip)", s)
				case slices.Contains(c.Codecs, s):
					d.errorf(item, p, "codec %q is listed twice", s)
				default:
					c.Codecs = append(c.Codecs, s)
				}
			}
			if len(c.Codecs) == 0 {
				d.errorf(n, path, "at least one codec is required (zstd, br, gzip)")
			}
		}),
		optional("concurrency", d.setInt(&c.Concurrency, 0, maxCompressWorkers)),
	})
	if ok && minAt != nil && c.MinSize > c.MaxSize {
		d.errorf(minAt, join(path, "min_size"), "min_size %s is above max_size %s", formatSize(c.MinSize), formatSize(c.MaxSize))
	}
}

// Compressible reports whether a Content-Type is one of c's media types.
func (c *Compress) Compressible(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	for _, t := range c.Types {
		switch {
		case t == mt:
			return true
		case strings.HasSuffix(t, "/*") && strings.HasPrefix(mt, t[:len(t)-1]):
			return true
		case strings.Contains(t, "/*+"):
			major, suffix, _ := strings.Cut(t, "/*")
			if strings.HasPrefix(mt, major+"/") && strings.HasSuffix(mt, suffix) {
				return true
			}
		}
	}
	return false
}
