package spec

import (
	"bytes"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/reqcanary/canary/internal/yamlread"
)

// Error is the error of [Parse] and [Ramp.Validate]: every problem found,
// in order. It matches [ErrInvalid].
type Error struct {
	Problems []Problem
}

// Error lists the problems, "; "-separated.
func (e *Error) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Error()
	}
	return "ramp: " + strings.Join(parts, "; ")
}

// Is reports whether target is [ErrInvalid].
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// Validate returns an [*Error] holding r.Check("ramp"), or nil.
func (r *Ramp) Validate() error {
	if ps := r.Check("ramp"); len(ps) > 0 {
		return &Error{Problems: ps}
	}
	return nil
}

// Parse reads the ramp section of a plan (the YAML document of a whole
// plan; its other keys are not looked at). It returns nil and no error
// when the plan has no ramp section, and an [*Error] naming each problem's
// key and line when the section is wrong.
func Parse(plan []byte) (*Ramp, error) {
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(plan)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, &Error{Problems: []Problem{{Key: "ramp", Reason: "the plan is not YAML: " + err.Error()}}}
	}
	root := &doc
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		root = doc.Content[0]
	}
	root = resolve(root)
	if root.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k := resolve(root.Content[i]); k.Kind == yaml.ScalarNode && k.Value == "ramp" {
			r, ps := ParseNode("ramp", root.Content[i+1])
			if len(ps) > 0 {
				return nil, &Error{Problems: ps}
			}
			return r, nil
		}
	}
	return nil, nil
}

// ParseNode reads a ramp section from its YAML node; key is its dotted
// path in the plan ("ramp"). A null node is no section: nil and no
// problems. Otherwise it returns the section and the problems found, each
// with its line; the section is only usable when there are none.
func ParseNode(key string, n *yaml.Node) (*Ramp, []Problem) {
	n = resolve(n)
	if isNull(n) {
		return nil, nil
	}
	w := &walker{pos: map[string]*yaml.Node{}}
	r := &Ramp{}
	w.mapping(key, n, []string{"steps", "gates", "on_failure", "check_interval"}, func(k, path string, v *yaml.Node) {
		switch k {
		case "steps":
			w.seq(path, v, func(ipath string, item *yaml.Node) {
				if s, ok := w.step(ipath, item); ok {
					r.Steps = append(r.Steps, s)
				} else {
					r.Steps = append(r.Steps, Step{Percent: math.NaN()}) // keeps the indexes
				}
			})
		case "gates":
			r.Gates = w.gates(path, v)
		case "on_failure":
			r.OnFailure, _ = w.str(path, v)
		case "check_interval":
			r.CheckInterval, _ = w.duration(path, v)
		}
	})
	if len(w.errs) > 0 {
		return nil, w.errs
	}
	ps := r.Check(key)
	for i := range ps {
		if pn, ok := w.locate(ps[i].Key); ok {
			ps[i].Line, ps[i].Column = pn.Line, pn.Column
		} else {
			ps[i].Line, ps[i].Column = n.Line, n.Column
		}
	}
	if len(ps) > 0 {
		return nil, ps
	}
	return r, nil
}

type walker struct {
	pos  map[string]*yaml.Node
	errs []Problem
}

// locate finds the node of key, or of the nearest enclosing key.
func (w *walker) locate(key string) (*yaml.Node, bool) {
	for key != "" {
		if n, ok := w.pos[key]; ok {
			return n, true
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return nil, false
}

func (w *walker) fail(key string, n *yaml.Node, reason string) {
	w.errs = append(w.errs, Problem{Key: key, Line: n.Line, Column: n.Column, Reason: reason})
}

var (
	resolve = yamlread.Resolve
	isNull  = yamlread.IsNull
)

func (w *walker) mapping(path string, n *yaml.Node, known []string, fn func(key, path string, v *yaml.Node)) {
	n = resolve(n)
	w.pos[path] = n
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		w.fail(path, n, "must be a mapping of "+strings.Join(known, ", "))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		kp := path + "." + k.Value
		switch {
		case k.Kind != yaml.ScalarNode:
			w.fail(path, k, "keys must be plain strings")
			continue
		case !contains(known, k.Value):
			w.fail(kp, k, "unknown key; known keys here: "+strings.Join(known, ", "))
			continue
		case seen[k.Value]:
			w.fail(kp, k, "repeated key")
			continue
		}
		seen[k.Value] = true
		w.pos[kp] = v
		fn(k.Value, kp, v)
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

func (w *walker) seq(path string, n *yaml.Node, fn func(ipath string, item *yaml.Node)) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		w.fail(path, n, "must be a list")
		return
	}
	if len(n.Content) > MaxSteps*2 {
		w.fail(path, n, "has "+strconv.Itoa(len(n.Content))+" items, too many")
		return
	}
	for i, item := range n.Content {
		item = resolve(item)
		ipath := path + "[" + strconv.Itoa(i) + "]"
		w.pos[ipath] = item
		fn(ipath, item)
	}
}

func (w *walker) str(path string, n *yaml.Node) (string, bool) {
	if !w.scalar(path, n, "a string") {
		return "", false
	}
	return n.Value, true
}

func (w *walker) scalar(path string, n *yaml.Node, want string) bool {
	return yamlread.Scalar(w.fail, path, n, want)
}

func (w *walker) integer(path string, n *yaml.Node) (int, bool) { return yamlread.Int(w.fail, path, n) }

func (w *walker) number(path string, n *yaml.Node) (float64, bool) {
	return yamlread.Number(w.fail, path, n)
}

func (w *walker) boolean(path string, n *yaml.Node) (bool, bool) {
	return yamlread.Bool(w.fail, path, n)
}

func (w *walker) duration(path string, n *yaml.Node) (time.Duration, bool) {
	return yamlread.Duration(w.fail, path, n)
}

// step reads "PERCENT% [HOLD]", a bare number, or a mapping.
func (w *walker) step(path string, n *yaml.Node) (Step, bool) {
	if isNull(n) {
		w.fail(path, n, `has no value; must be "PERCENT% [HOLD]" or a mapping of percent, hold, gates`)
		return Step{}, false
	}
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		if t := n.ShortTag(); t == "!!int" || t == "!!float" {
			f, ok := w.number(path, n)
			return Step{Percent: f}, ok
		}
		s, ok := parseStepShort(n.Value)
		if !ok {
			w.fail(path, n, `must be "PERCENT% [HOLD]" (e.g. "5% 2m" or "100%") or a mapping of percent, hold, gates; got `+
				strconv.Quote(n.Value))
		}
		return s, ok
	}
	var s Step
	errs := len(w.errs)
	gotPercent := false
	w.mapping(path, n, []string{"percent", "hold", "gates"}, func(k, p string, v *yaml.Node) {
		switch k {
		case "percent":
			s.Percent, gotPercent = w.number(p, v)
		case "hold":
			s.Hold, _ = w.duration(p, v)
		case "gates":
			g := w.gates(p, v)
			s.Gates = &g
		}
	})
	if len(w.errs) > errs {
		return s, false
	}
	if !gotPercent && n.Kind == yaml.MappingNode {
		w.fail(path+".percent", n, "required in a step")
		return s, false
	}
	return s, n.Kind == yaml.MappingNode
}

// parseStepShort parses "5% 2m", "5%", "5 2m".
func parseStepShort(v string) (Step, bool) {
	f := strings.Fields(v)
	if len(f) == 0 || len(f) > 2 {
		return Step{}, false
	}
	pct, err := strconv.ParseFloat(strings.TrimSuffix(f[0], "%"), 64)
	if err != nil || math.IsNaN(pct) || math.IsInf(pct, 0) {
		return Step{}, false
	}
	s := Step{Percent: pct}
	if len(f) == 2 {
		d, err := time.ParseDuration(f[1])
		if err != nil {
			return Step{}, false
		}
		s.Hold = d
	}
	return s, true
}

func (w *walker) gates(path string, n *yaml.Node) Gates {
	var g Gates
	w.mapping(path, n, []string{"fleet", "prometheus"}, func(k, p string, v *yaml.Node) {
		switch k {
		case "fleet":
			f := w.fleet(p, v)
			g.Fleet = &f
		case "prometheus":
			w.seq(p, v, func(ipath string, item *yaml.Node) {
				g.Prometheus = append(g.Prometheus, w.prom(ipath, item))
			})
		}
	})
	return g
}

var fleetKeys = []string{"min_canary_samples", "min_stable_samples", "failure_ratio", "failure_margin", "failure_evidence",
	"confidence", "disable_failure_rule", "latency_factor", "latency_margin", "latency_min_samples",
	"disable_latency_rule"}

func (w *walker) fleet(path string, n *yaml.Node) FleetGate {
	var f FleetGate
	w.mapping(path, n, fleetKeys, func(k, p string, v *yaml.Node) {
		switch k {
		case "min_canary_samples":
			f.MinCanarySamples, _ = w.integer(p, v)
		case "min_stable_samples":
			f.MinStableSamples, _ = w.integer(p, v)
		case "failure_ratio":
			f.FailureRatio, _ = w.number(p, v)
		case "failure_margin":
			f.FailureMargin, _ = w.number(p, v)
		case "failure_evidence":
			f.FailureEvidence, _ = w.number(p, v)
		case "confidence":
			f.Confidence, _ = w.number(p, v)
		case "disable_failure_rule":
			f.DisableFailureRule, _ = w.boolean(p, v)
		case "latency_factor":
			f.LatencyFactor, _ = w.number(p, v)
		case "latency_margin":
			f.LatencyMargin, _ = w.duration(p, v)
		case "latency_min_samples":
			f.LatencyMinSamples, _ = w.integer(p, v)
		case "disable_latency_rule":
			f.DisableLatencyRule, _ = w.boolean(p, v)
		}
	})
	return f
}

func (w *walker) prom(path string, n *yaml.Node) PromGate {
	var g PromGate
	w.mapping(path, n, []string{"name", "query", "max", "min", "tries", "on_error"}, func(k, p string, v *yaml.Node) {
		switch k {
		case "name":
			g.Name, _ = w.str(p, v)
		case "query":
			g.Query, _ = w.str(p, v)
		case "max":
			if f, ok := w.number(p, v); ok {
				g.Max = &f
			}
		case "min":
			if f, ok := w.number(p, v); ok {
				g.Min = &f
			}
		case "tries":
			g.Tries, _ = w.integer(p, v)
		case "on_error":
			g.OnError, _ = w.str(p, v)
		}
	})
	return g
}
