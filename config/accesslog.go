package config

import (
	"go.yaml.in/yaml/v3"
)

// AccessLog says which requests a PoP logs, one JSON line each.
type AccessLog struct {
	// Mode is "off" (the default), "sampled" or "full".
	Mode string
	// Sample is the fraction of requests logged in "sampled" mode, in
	// (0, 1]; default 0.01.
	Sample float64
	// Path is the file the lines are appended to (absolute); "" means the
	// process's standard error.
	Path string
}

// The access log modes.
const (
	AccessLogOff     = "off"
	AccessLogSampled = "sampled"
	AccessLogFull    = "full"
)

// accessLog decodes a PoP's access_log section.
func (d *decoder) accessLog(n *yaml.Node, path string, a *AccessLog) {
	a.Mode, a.Sample = AccessLogOff, 0.01
	d.fields(n, path, []field{
		optional("mode", func(n *yaml.Node, path string) {
			s, ok := d.str(n, path)
			if !ok {
				return
			}
			switch s {
			case AccessLogOff, AccessLogSampled, AccessLogFull:
				a.Mode = s
			default:
				d.errorf(n, path, "unknown access log mode %q (want off, sampled or full)", s)
			}
		}),
		optional("sample", d.setFloat(&a.Sample, 1e-9, 1)),
		optional("path", func(n *yaml.Node, path string) {
			if s, ok := d.str(n, path); ok && s != "" {
				a.Path = d.relative(s)
			}
		}),
	})
}
