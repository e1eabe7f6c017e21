package canary

import (
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/reqcanary/canary/internal/yamlread"
)

// guard reads the plan's guard section. A null section is no section.
func (w *planWalker) guard(p *Plan, path string, n *yaml.Node) {
	if isNull(n) {
		return
	}
	g := &GuardConfig{}
	errsBefore := len(w.errs)
	w.mapping(path+".", n, guardKeys, func(key, path string, v *yaml.Node) {
		switch key {
		case "enabled":
			g.Enabled, _ = w.boolean(path, v)
		case "buckets":
			g.Buckets, _ = w.integer(path, v)
		case "bucket_width":
			g.BucketWidth, _ = w.duration(path, v)
		case "min_canary_samples":
			g.MinCanarySamples, _ = w.integer(path, v)
		case "min_stable_samples":
			g.MinStableSamples, _ = w.integer(path, v)
		case "failure_ratio":
			g.FailureRatio, _ = w.number(path, v)
		case "failure_margin":
			g.FailureMargin, _ = w.number(path, v)
		case "failure_evidence":
			g.FailureEvidence, _ = w.number(path, v)
		case "confidence":
			g.Confidence, _ = w.number(path, v)
		case "disable_failure_rule":
			g.DisableFailureRule, _ = w.boolean(path, v)
		case "latency_factor":
			g.LatencyFactor, _ = w.number(path, v)
		case "latency_margin":
			g.LatencyMargin, _ = w.duration(path, v)
		case "latency_min_samples":
			g.LatencyMinSamples, _ = w.integer(path, v)
		case "disable_latency_rule":
			g.DisableLatencyRule, _ = w.boolean(path, v)
		case "unit_samples":
			g.UnitSamples, _ = w.integer(path, v)
		case "max_units":
			g.MaxUnits, _ = w.integer(path, v)
		case "cooldown":
			g.Cooldown, _ = w.duration(path, v)
		}
	})
	if len(w.errs) > errsBefore || resolve(n).Kind != yaml.MappingNode {
		return
	}
	if _, ok := w.pos[path+".enabled"]; !ok {
		w.fail(path+".enabled", n, "required in a guard section: true or false")
		return
	}
	p.Guard = g
}

func (w *planWalker) duration(path string, n *yaml.Node) (time.Duration, bool) {
	return yamlread.Duration(w.fail, path, n)
}
