package config

import (
	"path/filepath"

	"go.yaml.in/yaml/v3"
)

// This file is a PoP's disk tier: pops[].disk, a list of cache directories
// with a size each (docs/storage.md).

// Defaults and bounds of a cache directory.
const (
	minDiskSize     = 16 << 20 // 16 MiB
	defaultMinUses  = 2
	maxMinUses      = 100
	maxDiskPathsPer = 64
)

// Disk is one cache directory of a PoP's disk tier. The memory tier
// (cache_size) sits in front of the directories; a PoP with none keeps its
// cache in memory only.
type Disk struct {
	// Path is the directory, absolute after Parse (a relative path is
	// taken relative to the CDN file's directory). Created if missing.
	// Each directory belongs to one PoP process.
	Path string
	// Size is the most the directory's cache files may add up to; at least
	// 16 MiB.
	Size int64
	// MinUses is how many requests an object must have had before it is
	// written to this disk once the directory is full (nginx's
	// proxy_cache_min_uses): 1 writes every cacheable response; the
	// default 2 keeps one-hit wonders from pushing out what is on the SSD.
	// While the directory has free room every cacheable response is
	// written: that evicts nothing, and it writes at most the free room.
	MinUses int
	// WriteRate bounds the bytes written per second to this directory; 0
	// (the default) does not bound them.
	WriteRate int64
	// Fsync makes every cache file reach the disk before it is published;
	// default false (a crash loses no published file, and checksums catch
	// what a power loss tears).
	Fsync bool
}

// disks decodes a PoP's disk list. d.dirs maps each directory already
// claimed, in any PoP, to where: two PoPs (or two entries) sharing a
// directory would evict and purge each other's files.
func (d *decoder) disks(n *yaml.Node, path string, dst *[]Disk) {
	items, ok := d.list(n, path)
	if !ok {
		return
	}
	if len(items) > maxDiskPathsPer {
		d.errorf(n, path, "%d cache directories; at most %d", len(items), maxDiskPathsPer)
		return
	}
	for i, item := range items {
		p := index(path, i)
		disk := Disk{MinUses: defaultMinUses}
		var pathAt *yaml.Node
		ok := d.fields(item, p, []field{
			required("path", func(n *yaml.Node, path string) {
				pathAt = n
				if s, ok := d.str(n, path); ok {
					if s == "" {
						d.errorf(n, path, "empty path")
						return
					}
					if !filepath.IsAbs(s) {
						s = filepath.Join(filepath.Dir(d.file), s)
					}
					disk.Path = filepath.Clean(s)
				}
			}),
			required("size", d.setSize(&disk.Size, minDiskSize)),
			optional("min_uses", d.setInt(&disk.MinUses, 1, maxMinUses)),
			optional("write_rate", d.setSizeRange(&disk.WriteRate, 0, 1<<40)),
			optional("fsync", d.setBool(&disk.Fsync)),
		})
		if !ok || disk.Path == "" {
			continue
		}
		if first, dup := d.dirs[disk.Path]; dup {
			d.errorf(pathAt, join(p, "path"), "cache directory %q is already used by %s (line %d); each directory belongs to one PoP", disk.Path, first.path, first.line)
			continue
		}
		d.dirs[disk.Path] = seen{path: p, line: pathAt.Line}
		*dst = append(*dst, disk)
	}
}
