// Package yamlread reads the nodes of a YAML tree for the project's
// line-numbered parsers (the rollout plan and its ramp section): each reader
// checks a node's kind and tag and reports a problem through the caller's
// [Fail], which knows how the caller names keys and records errors.
package yamlread

import (
	"math"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// Fail records a problem at path (the caller's name for the key) and node n.
type Fail func(path string, n *yaml.Node, reason string)

// Resolve follows aliases (at most 16, so that a cycle ends).
func Resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 16; i++ {
		n = n.Alias
	}
	return n
}

// IsNull reports whether n is a null scalar (absent value, "~", "null").
func IsNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// Scalar reports whether n is a scalar with a value; otherwise it fails
// with "must be WANT" or "has no value; must be WANT".
func Scalar(fail Fail, path string, n *yaml.Node, want string) bool {
	switch {
	case n.Kind != yaml.ScalarNode:
		fail(path, n, "must be "+want)
		return false
	case IsNull(n):
		fail(path, n, "has no value; must be "+want)
		return false
	}
	return true
}

// Int reads a whole number.
func Int(fail Fail, path string, n *yaml.Node) (int, bool) {
	if !Scalar(fail, path, n, "a whole number") {
		return 0, false
	}
	var i int
	if n.ShortTag() != "!!int" || n.Decode(&i) != nil {
		fail(path, n, "must be a whole number, got "+strconv.Quote(n.Value))
		return 0, false
	}
	return i, true
}

// Number reads a finite number (an integer or a float).
func Number(fail Fail, path string, n *yaml.Node) (float64, bool) {
	if !Scalar(fail, path, n, "a number") {
		return 0, false
	}
	var f float64
	if t := n.ShortTag(); (t != "!!int" && t != "!!float") || n.Decode(&f) != nil ||
		math.IsNaN(f) || math.IsInf(f, 0) {
		fail(path, n, "must be a number, got "+strconv.Quote(n.Value))
		return 0, false
	}
	return f, true
}

// Bool reads true or false.
func Bool(fail Fail, path string, n *yaml.Node) (bool, bool) {
	if !Scalar(fail, path, n, "true or false") {
		return false, false
	}
	var b bool
	if n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		fail(path, n, "must be true or false, got "+strconv.Quote(n.Value))
		return false, false
	}
	return b, true
}

// Duration reads a Go duration ("1s", "250ms").
func Duration(fail Fail, path string, n *yaml.Node) (time.Duration, bool) {
	const want = "a duration such as 1s or 250ms"
	if !Scalar(fail, path, n, want) {
		return 0, false
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		fail(path, n, "must be "+want+", got "+strconv.Quote(n.Value))
		return 0, false
	}
	return d, true
}
