package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"slices"
)

// This file is the version of a configuration as it runs: the file and
// the files it names. Version alone hashes the YAML, so a new network map
// or certificate under the same file name would keep it.

// NamedFiles returns the files the configuration names whose content
// shapes what runs, sorted and without repeats: the network map, the geo
// databases and the DNSSEC public keys (dns; a .key file, never its
// .private), the PoPs' certificates and the origins' CA files.
// Secrets are left out (purge.token_file, private keys, the control
// plane's credentials): a version is shown to anyone who reads /stats and
// must not help to guess one.
func (c *Config) NamedFiles() []string {
	var files []string
	add := func(f string) {
		if f != "" {
			files = append(files, f)
		}
	}
	add(c.DNS.Networks)
	add(c.DNS.GeoIP)
	add(c.DNS.ASN)
	for _, k := range c.DNS.DNSSEC.Keys {
		add(k.File)
	}
	for i := range c.POPs {
		for _, cf := range c.POPs[i].TLS.Certificates {
			add(cf.Cert)
		}
	}
	for i := range c.Services {
		add(c.Services[i].Origin.TLS.CAFile)
	}
	slices.Sort(files)
	return slices.Compact(files)
}

// ContentVersion is the version of everything the configuration runs
// from: the first 12 hex digits of a SHA-256 over the file's Version and
// the name and bytes of each of NamedFiles, read now. When the file names
// no such file it equals Version, so versions of plain files stay as
// they were. A file that cannot be read is an error: what would run is
// unknown.
func (c *Config) ContentVersion() (string, error) {
	files := c.NamedFiles()
	if len(files) == 0 {
		return c.Version, nil
	}
	h := sha256.New()
	fmt.Fprintf(h, "outpost config %s\n", c.Version)
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return "", fmt.Errorf("config: version: %w", err)
		}
		fh := sha256.New()
		_, err = io.Copy(fh, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("config: version: %s: %w", name, err)
		}
		fmt.Fprintf(h, "%q %x\n", name, fh.Sum(nil))
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}
