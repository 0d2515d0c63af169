package config

import (
	"go.yaml.in/yaml/v3"
)

// AccessLog says which requests a PoP logs, one line each, and where.
type AccessLog struct {
	// Mode is "off" (the default), "sampled" or "full".
	Mode string
	// Sample is the fraction of requests logged in "sampled" mode, in
	// (0, 1]; default 0.01.
	Sample float64
	// Path is the file the lines are appended to (absolute; a relative
	// path in the file is relative to the file), or AccessLogStdout or
	// AccessLogStderr; "" (the default) means standard error. A file is
	// reopened on SIGUSR1, after logrotate has moved it.
	Path string
	// Format is "json" (the default: one JSON object a line, every field)
	// or "combined" (the NCSA combined format of Apache and nginx, which
	// log tools read; the JSON fields beyond it are left out).
	Format string
	// Buffer is how many lines may wait for the writer; a line that finds
	// it full is dropped and counted (outpost_pop_access_log_dropped_total),
	// so a slow disk never slows a request. Default 4096, 1..1048576.
	Buffer int
}

// The access log modes, formats and the targets that are not files.
const (
	AccessLogOff     = "off"
	AccessLogSampled = "sampled"
	AccessLogFull    = "full"

	AccessLogJSON     = "json"
	AccessLogCombined = "combined"

	AccessLogStdout = "stdout"
	AccessLogStderr = "stderr"

	defaultAccessLogBuffer = 4096
	maxAccessLogBuffer     = 1 << 20
)

// accessLog decodes a PoP's access_log section.
func (d *decoder) accessLog(n *yaml.Node, path string, a *AccessLog) {
	a.Mode, a.Sample, a.Format, a.Buffer = AccessLogOff, 0.01, AccessLogJSON, defaultAccessLogBuffer
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
			s, ok := d.str(n, path)
			switch {
			case !ok || s == "":
			case s == AccessLogStdout || s == AccessLogStderr:
				a.Path = s
			default:
				a.Path = d.relative(s)
			}
		}),
		optional("format", func(n *yaml.Node, path string) {
			s, ok := d.str(n, path)
			if !ok {
				return
			}
			switch s {
			case AccessLogJSON, AccessLogCombined:
				a.Format = s
			default:
				d.errorf(n, path, "unknown access log format %q (want json or combined)", s)
			}
		}),
		optional("buffer", d.setInt(&a.Buffer, 1, maxAccessLogBuffer)),
	})
}
