package canary

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/reqcanary/canary/internal/yamlread"
)

// maxPlanErrors caps how many problems one error reports.
const maxPlanErrors = 20

// ParsePlan reads a plan from YAML (see [Plan] for the format), checks it,
// and returns it with defaults filled in (override.header X-Canary).
//
// Unknown keys, repeated keys, values of the wrong type and values out of
// range are errors. The error is a [*PlanError] naming the key and line, or,
// when there are several problems, the first twenty joined with errors.Join;
// every one matches [ErrInvalidPlan].
func ParsePlan(data []byte) (Plan, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return Plan{}, &PlanError{Reason: "the plan is empty"}
		}
		return Plan{}, yamlError(err, data)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return Plan{}, &PlanError{Line: extra.Line, Column: extra.Column,
			Reason: "more than one YAML document; a plan is one document"}
	case !errors.Is(err, io.EOF):
		return Plan{}, yamlError(err, data)
	}
	w := &planWalker{pos: map[string]yaml.Node{}}
	var p Plan
	w.plan(&p, &doc)
	if len(w.errs) == 0 {
		w.errs = validatePlan(&p, w.pos)
	}
	if err := joinPlanErrors(w.errs); err != nil {
		return Plan{}, err
	}
	return p, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlParserProblems are the problems yaml.v3 reports as parser (not
// scanner) errors: for those it prints the 0-based line of the construct it
// was parsing, where scanner errors print the 1-based line.
var yamlParserProblems = []string{
	"did not find expected ',' or ']'", "did not find expected ',' or '}'",
	"did not find expected '-' indicator", "did not find expected <document start>",
	"did not find expected <stream-start>", "did not find expected key",
	"did not find expected node content", "found duplicate %TAG directive",
	"found duplicate %YAML directive", "found incompatible YAML document",
	"found undefined tag handle",
}

// yamlError turns a yaml.v3 syntax error into a *PlanError with its 1-based
// line. yaml.v3 leaves the line out when it is the first. When the line holds
// an unquoted value with a colon in a flow sequence (IPv6 addresses in
// trusted_cidrs: [::1/128]), whose YAML message says nothing useful, it adds
// the hint to quote it.
func yamlError(err error, data []byte) error {
	msg := err.Error()
	pe := &PlanError{Line: 1, Reason: strings.TrimPrefix(msg, "yaml: "), Err: err}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		pe.Line, _ = strconv.Atoi(m[1])
		pe.Reason = msg[len(m[0]):]
		if contains(yamlParserProblems, pe.Reason) {
			pe.Line++
		}
	}
	if strings.HasPrefix(pe.Reason, "did not find expected") && flowColon(data, pe.Line) {
		pe.Reason += "; a value holding ':' (an IPv6 address such as ::1/128) must be quoted in a [ ] list: ['::1/128']"
	}
	return pe
}

// flowColon reports whether line n (1-based) of data has a [ ] list with an
// unquoted value that starts with a colon, as IPv6 addresses do.
func flowColon(data []byte, n int) bool {
	lines := bytes.Split(data, []byte("\n"))
	if n < 1 || n > len(lines) {
		return false
	}
	l := string(lines[n-1])
	i := strings.IndexByte(l, '[')
	if i < 0 {
		return false
	}
	for _, item := range strings.Split(l[i+1:], ",") {
		if strings.HasPrefix(strings.TrimSpace(item), ":") {
			return true
		}
	}
	return false
}

func joinPlanErrors(errs []*PlanError) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	if len(errs) > maxPlanErrors {
		errs = errs[:maxPlanErrors]
	}
	list := make([]error, len(errs))
	for i, e := range errs {
		list[i] = e
	}
	return errors.Join(list...)
}

// planWalker reads the YAML tree into a Plan, recording each key's node (for
// its position) and every type error.
type planWalker struct {
	pos  map[string]yaml.Node
	errs []*PlanError
}

func (w *planWalker) fail(key string, n *yaml.Node, reason string) {
	w.errs = append(w.errs, &PlanError{Key: key, Line: n.Line, Column: n.Column, Reason: reason})
}

// resolve and isNull are yamlread's, by their old names.
var (
	resolve = yamlread.Resolve
	isNull  = yamlread.IsNull
)

// mapping calls fn for each key of the mapping n, checking that each key is
// one of known and appears once. A null n is an empty mapping.
func (w *planWalker) mapping(prefix string, n *yaml.Node, known []string, fn func(key, path string, v *yaml.Node)) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		w.fail(strings.TrimSuffix(prefix, "."), n, "must be a mapping of "+strings.Join(known, ", "))
		return
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		path := prefix + k.Value
		switch {
		case k.Kind != yaml.ScalarNode:
			w.fail(strings.TrimSuffix(prefix, "."), k, "keys must be plain strings")
			continue
		case !contains(known, k.Value):
			w.fail(path, k, "unknown key; known keys here: "+strings.Join(known, ", "))
			continue
		case seen[k.Value]:
			w.fail(path, k, "repeated key")
			continue
		}
		seen[k.Value] = true
		w.pos[path] = *v
		fn(k.Value, path, v)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (w *planWalker) plan(p *Plan, doc *yaml.Node) {
	root := doc
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			w.errs = append(w.errs, &PlanError{Reason: "the plan is empty"})
			return
		}
		root = doc.Content[0]
	}
	if isNull(resolve(root)) {
		w.errs = append(w.errs, &PlanError{Line: root.Line, Reason: "the plan is empty"})
		return
	}
	top := []string{"version", "salt", "canary_percent", "kill_switch", "tenants", "override", "guard", "ramp"}
	w.mapping("", root, top, func(key, path string, v *yaml.Node) {
		switch key {
		case "version":
			p.Version, _ = w.integer(path, v)
		case "salt":
			p.Salt, _ = w.str(path, v)
		case "canary_percent":
			p.CanaryPercent, _ = w.number(path, v)
		case "kill_switch":
			p.KillSwitch, _ = w.boolean(path, v)
		case "tenants":
			w.mapping(path+".", v, []string{"canary", "stable"}, func(key, path string, v *yaml.Node) {
				if key == "canary" {
					p.Tenants.Canary = w.strings(path, v)
				} else {
					p.Tenants.Stable = w.strings(path, v)
				}
			})
		case "override":
			w.mapping(path+".", v, []string{"header", "trusted_cidrs"}, func(key, path string, v *yaml.Node) {
				if key == "header" {
					p.Override.Header, _ = w.str(path, v)
				} else {
					p.Override.TrustedCIDRs = w.prefixes(path, v)
				}
			})
		case "guard":
			w.guard(p, path, v)
		case "ramp":
			w.ramp(p, path, v)
		}
	})
}

func (w *planWalker) str(path string, n *yaml.Node) (string, bool) {
	if !w.scalar(path, n, "a string") {
		return "", false
	}
	if n.ShortTag() != "!!str" {
		// Numbers and booleans are accepted as their text, as written.
		if t := n.ShortTag(); t != "!!int" && t != "!!float" && t != "!!bool" {
			w.fail(path, n, "must be a string, got "+strconv.Quote(n.Value))
			return "", false
		}
	}
	return n.Value, true
}

func (w *planWalker) scalar(path string, n *yaml.Node, want string) bool {
	return yamlread.Scalar(w.fail, path, n, want)
}

func (w *planWalker) integer(path string, n *yaml.Node) (int, bool) {
	return yamlread.Int(w.fail, path, n)
}

func (w *planWalker) number(path string, n *yaml.Node) (float64, bool) {
	return yamlread.Number(w.fail, path, n)
}

func (w *planWalker) boolean(path string, n *yaml.Node) (bool, bool) {
	return yamlread.Bool(w.fail, path, n)
}

// seq calls fn for each item of the sequence n; a null n is an empty list.
func (w *planWalker) seq(path string, n *yaml.Node, fn func(ipath string, item *yaml.Node)) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		w.fail(path, n, "must be a list")
		return
	}
	for i, item := range n.Content {
		item = resolve(item)
		ipath := path + "[" + strconv.Itoa(i) + "]"
		w.pos[ipath] = *item
		fn(ipath, item)
	}
}

func (w *planWalker) strings(path string, n *yaml.Node) []string {
	out := []string{}
	w.seq(path, n, func(ipath string, item *yaml.Node) {
		if s, ok := w.str(ipath, item); ok {
			out = append(out, s)
		}
	})
	return out
}

func (w *planWalker) prefixes(path string, n *yaml.Node) []netip.Prefix {
	out := []netip.Prefix{}
	w.seq(path, n, func(ipath string, item *yaml.Node) {
		s, ok := w.str(ipath, item)
		if !ok {
			return
		}
		p, err := parseCIDR(s)
		if err != nil {
			w.fail(ipath, item, err.Error())
			return
		}
		out = append(out, p)
	})
	return out
}

// parseCIDR parses a CIDR prefix, or a bare address as a single-host prefix.
func parseCIDR(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, errors.New("not a CIDR prefix or an IP address: " + strconv.Quote(s))
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, errors.New("not a CIDR prefix: " + strconv.Quote(s))
	}
	return p, nil
}
