package config

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// This file is a service's signed_urls section: the keys a PoP checks
// signed URLs with (pop/signed.go says what is signed and how).

// Bounds of signing keys.
const (
	// MaxSigningKeys is how many keys may be valid at once: the current
	// one and the one it replaces, for a rotation.
	MaxSigningKeys = 2
	// minSigningKey is the shortest secret accepted (128 bits as text).
	minSigningKey = 16
)

// SignedURLs makes a service answer only URLs signed with one of its keys
// (an HMAC over the path, query, expiry and an optional client address
// prefix). The zero value means URLs need no signature.
type SignedURLs struct {
	// Keys are the secrets, one or two: the first signs (outpost sign),
	// all of them verify, so a new key can be put first while links made
	// with the old one still work. String and GoString hide them.
	Keys []string
}

// Enabled reports whether the service requires signed URLs.
func (s SignedURLs) Enabled() bool { return len(s.Keys) > 0 }

// String describes s without its keys.
func (s SignedURLs) String() string {
	if !s.Enabled() {
		return "signed_urls{off}"
	}
	return fmt.Sprintf("signed_urls{%d keys}", len(s.Keys))
}

// GoString is String, so that %#v hides the keys too.
func (s SignedURLs) GoString() string { return s.String() }

// signedURLs decodes a service's signed_urls section. Each key is a
// secret given inline, or {file: PATH} naming a file that holds it
// (relative to the config file's directory; surrounding whitespace
// ignored).
func (d *decoder) signedURLs(n *yaml.Node, path string, s *SignedURLs) {
	d.fields(n, path, []field{
		required("keys", func(n *yaml.Node, path string) {
			items, ok := d.list(n, path)
			if !ok {
				return
			}
			if len(items) == 0 || len(items) > MaxSigningKeys {
				d.errorf(n, path, "want 1 or %d keys (the current one first, and the one it replaces during a rotation), not %d", MaxSigningKeys, len(items))
				return
			}
			for i, item := range items {
				p := index(path, i)
				var key string
				if item.Kind == yaml.MappingNode {
					d.fields(item, p, []field{
						required("file", func(n *yaml.Node, path string) {
							name, ok := d.str(n, path)
							if !ok {
								return
							}
							_, k, err := d.readTokenFile(name)
							if err != nil {
								d.wrapf(n, path, err, "%v", err)
								return
							}
							key = k
						}),
					})
				} else if k, ok := d.str(item, p); ok {
					key = k
				}
				if key == "" {
					continue
				}
				if len(key) < minSigningKey {
					d.errorf(item, p, "a signing key must be at least %d characters (e.g. from `openssl rand -hex 32`)", minSigningKey)
					continue
				}
				for _, prev := range s.Keys {
					if prev == key {
						d.errorf(item, p, "the same key is listed twice")
					}
				}
				s.Keys = append(s.Keys, key)
			}
		}),
	})
}
