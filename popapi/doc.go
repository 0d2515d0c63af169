// Package popapi holds the wire types of a PoP's admin listener: the /stats
// document with its figures, and the body and answer of POST /purge. The
// PoP (package pop) serves them; command-line clients (packages purge and
// stats) and, later, a control plane read and send them without linking
// the server.
//
// The types are plain data with JSON tags, and their encoding is the wire
// format: a field renamed here changes what every client sees. The one
// piece of logic is how figures add up: counters are summed, and the
// ratios are derived again from the sums (Figures.Add, Figures.Derive),
// because a mean of ratios would weigh a quiet PoP like a busy one.
package popapi
