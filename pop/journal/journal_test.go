package journal

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

// TestMatches checks what each kind of purge covers.
func TestMatches(t *testing.T) {
	const key = "https://demo.example/a/b?x"
	tests := []struct {
		name string
		r    Record
		key  string
		tags []string
		want bool
	}{
		{"url: the key", Record{Kind: "url", Keys: []string{key}}, key, nil, true},
		{"url: a variant of the key", Record{Kind: "url", Keys: []string{key}}, key + "\x00gzip", nil, true},
		{"url: a slice of the key", Record{Kind: "url", Keys: []string{key}}, key + "\x00slice:3", nil, true},
		{"url: a longer URL is not the key", Record{Kind: "url", Keys: []string{key}}, key + "y", nil, false},
		{"prefix", Record{Kind: "prefix", Keys: []string{"https://demo.example/a/"}}, key, nil, true},
		{"prefix: another path", Record{Kind: "prefix", Keys: []string{"https://demo.example/c/"}}, key, nil, false},
		{"tag", Record{Kind: "tag", Tag: "red"}, key, []string{"blue", "red"}, true},
		{"tag: not carried", Record{Kind: "tag", Tag: "red"}, key, []string{"blue"}, false},
		{"an unknown kind matches nothing", Record{Kind: "all"}, key, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.Matches(tt.key, tt.tags); got != tt.want {
				t.Errorf("Matches = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestSurvivesReopen checks that an appended purge is read back from every
// directory's file after a reopen, covers entries made before it only, and
// that Prune forgets what was made before its time, on disk too.
func TestSurvivesReopen(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir()}
	j, err := Open(dirs)
	if err != nil {
		t.Fatal(err)
	}
	recs := []Record{
		{At: t0, Kind: "url", Keys: []string{"http://d/a"}},
		{At: t0.Add(time.Minute), Kind: "tag", Tag: "red", Soft: true},
		{At: t0.Add(2 * time.Minute), Kind: "prefix", Keys: []string{"http://d/p/"}},
	}
	for _, r := range recs {
		if err := j.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	// Either directory alone knows every purge.
	for _, one := range [][]string{dirs[:1], dirs[1:], dirs} {
		j, err := Open(one)
		if err != nil {
			t.Fatal(err)
		}
		checks := []struct {
			key  string
			tags []string
			made time.Time
			want bool
		}{
			{"http://d/a", nil, t0.Add(-time.Second), true},
			{"http://d/a", nil, t0.Add(time.Second), false}, // fetched after the purge
			{"http://d/x", []string{"red"}, t0, true},
			{"http://d/p/1", nil, t0.Add(90 * time.Second), true},
			{"http://d/q/1", nil, t0, false},
		}
		for _, c := range checks {
			if got := j.Purged(c.key, c.tags, c.made); got != c.want {
				t.Errorf("%d files: Purged(%q, %q, %v) = %v, want %v", len(one), c.key, c.tags, c.made, got, c.want)
			}
		}
		j.Close()
	}

	j, err = Open(dirs)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Prune(t0.Add(90 * time.Second)); err != nil {
		t.Fatal(err)
	}
	j.Close()
	j, err = Open(dirs[1:])
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if n := j.Len(); n != 1 {
		t.Errorf("after Prune, %d records on disk, want 1", n)
	}
	if j.Purged("http://d/a", nil, t0.Add(-time.Second)) {
		t.Error("a pruned purge still applies")
	}
}

// TestBadFile checks that a journal file that is not a journal is an
// error naming it, not an empty journal.
func TestBadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	if err := os.WriteFile(path, []byte("not a bbolt file, but long enough to look at its header pages..."), 0o600); err != nil {
		t.Fatal(err)
	}
	j, err := Open([]string{dir})
	if err == nil {
		j.Close()
		t.Fatal("Open accepted a file that is not a journal")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("the error does not name the file: %v", err)
	}
}
