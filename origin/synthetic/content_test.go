package synthetic

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func readAll(t *testing.T, id string, size int64) []byte {
	t.Helper()
	b, err := io.ReadAll(Content(id, size))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != size {
		t.Fatalf("Content(%q, %d) gave %d bytes", id, size, len(b))
	}
	return b
}

func TestContentDeterministic(t *testing.T) {
	a1 := readAll(t, "a", 100_000)
	a2 := readAll(t, "a", 100_000)
	if !bytes.Equal(a1, a2) {
		t.Fatal("the same id gave different bytes")
	}
	if b := readAll(t, "b", 100_000); bytes.Equal(a1[:64], b[:64]) {
		t.Fatal("ids a and b start with the same bytes")
	}
	if short := readAll(t, "a", 5000); !bytes.Equal(short, a1[:5000]) {
		t.Fatal("a shorter object is not a prefix of a longer one")
	}
	// Every block differs from the first, so a body shifted by whole
	// blocks fails verification.
	for k := 1; k*blockSize < len(a1); k++ {
		if bytes.Equal(a1[:blockSize], a1[k*blockSize:min((k+1)*blockSize, len(a1))]) {
			t.Fatalf("block %d repeats block 0", k)
		}
	}
	if err := iotest.TestReader(Content("a", 100_000), a1); err != nil {
		t.Fatal(err)
	}
}

func TestContentReadAt(t *testing.T) {
	const size = 3*blockSize + 123
	full := readAll(t, "ra", size)
	r := Content("ra", size)
	offsets := []int64{0, 1, 7, 8, 9, blockSize - 1, blockSize, blockSize + 3, 2*blockSize - 5, size - 9, size - 1}
	lengths := []int{0, 1, 3, 8, 13, 4095, blockSize, blockSize + 1, 2 * blockSize}
	for _, off := range offsets {
		for _, n := range lengths {
			p := make([]byte, n)
			got, err := r.ReadAt(p, off)
			want := min(int64(n), size-off)
			if int64(got) != want {
				t.Fatalf("ReadAt(%d bytes, %d) = %d, want %d", n, off, got, want)
			}
			if want < int64(n) && err != io.EOF {
				t.Fatalf("ReadAt(%d bytes, %d) short without io.EOF: %v", n, off, err)
			}
			if !bytes.Equal(p[:got], full[off:off+int64(got)]) {
				t.Fatalf("ReadAt(%d bytes, %d) differs from the stream", n, off)
			}
		}
	}
	if n, err := r.ReadAt(make([]byte, 1), size); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at the end = %d, %v; want 0, EOF", n, err)
	}
}

// TestContentGolden pins the definition of the bytes, sizes and validators.
// If it fails, clients built against the old definition will reject every
// body: bump ContentVersion and update the values together.
func TestContentGolden(t *testing.T) {
	tests := []struct {
		id                 string
		first16, at4096    string
		size               int64
		etag, lastModified string
	}{
		{"golden", "52b01ad58d3cfa7cc9a90f6da6bfc3ba", "9f10b8b751695b86", 104090, `"1-8a656638b308f613-104090"`, "2024-09-14T01:12:42Z"},
		{"a", "893d2c58508ea71c941664a490420863", "8d49f1a35c8d323f", 26965, `"1-241de3358c90e4ab-26965"`, "2024-05-15T19:21:47Z"},
		{"images/cat.jpg", "16e4cb272480a2ab904dac3bef497e65", "ae0bde05e7d26c27", 34794, `"1-f85e55c18033b65e-34794"`, "2024-07-01T06:03:35Z"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			if got := hex.EncodeToString(readAll(t, tt.id, 16)); got != tt.first16 {
				t.Errorf("first 16 bytes = %s, want %s", got, tt.first16)
			}
			p := make([]byte, 8)
			Content(tt.id, 1<<20).ReadAt(p, 4096)
			if got := hex.EncodeToString(p); got != tt.at4096 {
				t.Errorf("bytes at 4096 = %s, want %s", got, tt.at4096)
			}
			if got := SizeOf(tt.id); got != tt.size {
				t.Errorf("SizeOf = %d, want %d", got, tt.size)
			}
			if got := ETag(tt.id, tt.size); got != tt.etag {
				t.Errorf("ETag = %s, want %s", got, tt.etag)
			}
			if got := LastModified(tt.id).Format(time.RFC3339); got != tt.lastModified {
				t.Errorf("LastModified = %s, want %s", got, tt.lastModified)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	body := readAll(t, "v", 10_000)
	flip := func(i int) []byte {
		b := bytes.Clone(body)
		b[i] ^= 0x40
		return b
	}
	tests := []struct {
		name    string
		id      string
		body    []byte
		wantErr string // "" for a match
	}{
		{"whole body", "v", body, ""},
		{"prefix", "v", body[:4097], ""},
		{"empty", "v", nil, ""},
		{"first byte flipped", "v", flip(0), "at offset 0:"},
		{"byte in second block flipped", "v", flip(4097), "at offset 4097:"},
		{"last byte flipped", "v", flip(9999), "at offset 9999:"},
		{"another id's bytes", "w", body, "at offset"},
		{"shifted by a block", "v", body[blockSize:], "at offset 0:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.id, tt.body)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Verify = %v, want ErrMismatch %q", err, tt.wantErr)
			}
		})
	}
}

func TestVerifierStreamsFromAnOffset(t *testing.T) {
	body := readAll(t, "s", 50_000)
	v := NewVerifier("s", 1234)
	// Small, odd-sized writes cross word and block boundaries.
	n, err := io.CopyBuffer(v, iotest.OneByteReader(bytes.NewReader(body[1234:1300])), make([]byte, 7))
	if err != nil || n != 66 {
		t.Fatalf("copy = %d, %v", n, err)
	}
	if _, err := io.CopyBuffer(v, bytes.NewReader(body[1300:]), make([]byte, 4099)); err != nil {
		t.Fatal(err)
	}
	if v.Offset() != int64(len(body)) {
		t.Fatalf("Offset = %d, want %d", v.Offset(), len(body))
	}
	bad := bytes.Clone(body[:100])
	bad[50]++
	n2, err := NewVerifier("s", 0).Write(bad)
	if n2 != 50 || !errors.Is(err, ErrMismatch) {
		t.Fatalf("Write = %d, %v; want 50, ErrMismatch", n2, err)
	}
}

func TestETagAndLastModified(t *testing.T) {
	e := ETag("id", 100)
	if !strings.HasPrefix(e, `"`) || !strings.HasSuffix(e, `"`) {
		t.Errorf("ETag %s is not a quoted strong entity-tag (RFC 9110 §8.8.3)", e)
	}
	if ETag("id", 101) == e || ETag("id2", 100) == e {
		t.Error("ETag does not change with the size or the id")
	}
	if ETag("id", 100) != e {
		t.Error("ETag is not deterministic")
	}
	latest := time.Unix(lastModifiedEpoch, 0)
	for _, id := range []string{"", "a", "b", "images/cat.jpg", strings.Repeat("x", 500)} {
		lm := LastModified(id)
		if lm.After(latest) || lm.Before(latest.AddDate(-1, 0, -1)) || lm.Nanosecond() != 0 {
			t.Errorf("LastModified(%q) = %v, want a whole second in the year before %v", id, lm, latest)
		}
		if !LastModified(id).Equal(lm) {
			t.Errorf("LastModified(%q) is not deterministic", id)
		}
	}
}

// TestContentMatchesDefinition recomputes bytes from the definition in
// Content's doc comment, independently of fill, so the doc stays true.
func TestContentMatchesDefinition(t *testing.T) {
	const gamma = 0x9e3779b97f4a7c15
	sm := func(x uint64) uint64 {
		x += gamma
		x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
		x = (x ^ (x >> 27)) * 0x94d049bb133111eb
		return x ^ (x >> 31)
	}
	for _, id := range []string{"", "a", "images/cat.jpg"} {
		sum := sha256.Sum256([]byte("outpost-synthetic/v1\x00" + id))
		h0, h1 := binary.LittleEndian.Uint64(sum[0:]), binary.LittleEndian.Uint64(sum[8:])
		const size = 3 * blockSize
		got := readAll(t, id, size)
		for w := uint64(0); w < size/8; w++ {
			want := sm(h0+(w%512)*gamma) ^ sm(h1+(w/512)*gamma)
			if g := binary.LittleEndian.Uint64(got[8*w:]); g != want {
				t.Fatalf("id %q word %d = %#x, the definition says %#x", id, w, g, want)
			}
		}
	}
}
