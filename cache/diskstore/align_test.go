package diskstore

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestAlignedBody: a body of alignMin bytes or more starts on a block
// boundary of its file (flagAligned), a smaller one right after the
// metadata, and both are served whole, before and after a restart.
func TestAlignedBody(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		key     string
		size    int
		aligned bool
	}{
		{"small", 1000, false},
		{"just-below", alignMin - 1, false},
		{"at-the-threshold", alignMin, true},
		{"large", 1<<20 + 123, true},
	}
	s := openTest(t, Options{Dir: dir, MinUses: 1})
	loaded(t, s)
	for _, tt := range tests {
		s.Set(entryFor(tt.key, tt.size), time.Hour)
	}
	settle(t, s)
	for _, tt := range tests {
		b, err := os.ReadFile(s.path(fileName(tt.key)))
		if err != nil {
			t.Fatalf("%s: %v", tt.key, err)
		}
		h, err := decodeHeader(b)
		if err != nil {
			t.Fatalf("%s: %v", tt.key, err)
		}
		if got := h.flags&flagAligned != 0; got != tt.aligned {
			t.Errorf("%s: aligned flag %v, want %v", tt.key, got, tt.aligned)
		}
		if tt.aligned && h.bodyOff%blockSize != 0 {
			t.Errorf("%s: body at offset %d, not on a block boundary", tt.key, h.bodyOff)
		}
		if !tt.aligned && h.bodyOff != headerSize+int64(h.metaLen) {
			t.Errorf("%s: body at offset %d, want right after the metadata (%d)", tt.key, h.bodyOff, headerSize+int64(h.metaLen))
		}
		if _, body, err := decodeFile(b); err != nil || !bytes.Equal(body, bodyFor(tt.key, tt.size)) {
			t.Errorf("%s: decodeFile: %v, body right: %v", tt.key, err, bytes.Equal(body, bodyFor(tt.key, tt.size)))
		}
		if e, ok := s.Get(tt.key); !ok || !bytes.Equal(readBody(t, e), bodyFor(tt.key, tt.size)) {
			t.Errorf("%s: not served whole", tt.key)
		}
	}
	s.Close()
	s2 := openTest(t, Options{Dir: dir, MinUses: 1})
	loaded(t, s2)
	if p := s2.Load(); p.Loaded != uint64(len(tests)) || p.Dropped != 0 {
		t.Errorf("after a restart: %+v", p)
	}
	for _, tt := range tests {
		if e, ok := s2.Get(tt.key); !ok || !bytes.Equal(readBody(t, e), bodyFor(tt.key, tt.size)) {
			t.Errorf("%s: not served whole after a restart", tt.key)
		}
	}
}

// TestUnalignedLargeBodyStillRead: a file written before flagAligned
// existed (flags 0: a large body right after the metadata) is loaded and
// served as it is.
func TestUnalignedLargeBodyStillRead(t *testing.T) {
	dir := t.TempDir()
	const key, size = "old-layout", 300 << 10
	e := entryFor(key, size)
	m := metaOf(e, time.Now().Add(time.Hour).UnixNano())
	mb, err := encodeMeta(&m)
	if err != nil {
		t.Fatal(err)
	}
	body := bodyFor(key, size)
	file := appendHeader(nil, 0, len(mb), crc32.Checksum(mb, castagnoli), size, crc32.Checksum(body, castagnoli))
	file = append(append(file, mb...), body...)
	if binary.LittleEndian.Uint16(file[6:]) != 0 {
		t.Fatal("the old layout has flags 0")
	}
	s := openTest(t, Options{Dir: dir, MinUses: 1})
	loaded(t, s)
	path := s.path(fileName(key))
	s.Close()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	s2 := openTest(t, Options{Dir: dir, MinUses: 1})
	loaded(t, s2)
	if p := s2.Load(); p.Loaded != 1 || p.Dropped != 0 {
		t.Fatalf("Load = %+v, want the old file loaded", p)
	}
	got, ok := s2.Get(key)
	if !ok || !bytes.Equal(readBody(t, got), body) {
		t.Fatal("the old layout's body is not served whole")
	}
}
