package ramp

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// planFields are the two fields of a plan the ramp reads and writes.
type planFields struct {
	Percent float64
	Kill    bool
}

// readFields reads canary_percent and kill_switch from a plan's YAML
// (absent: 0 and false).
func readFields(data []byte) (planFields, error) {
	var doc struct {
		Percent float64 `yaml:"canary_percent"`
		Kill    bool    `yaml:"kill_switch"`
	}
	var probe map[string]yaml.Node
	if err := yaml.Unmarshal(data, &probe); err != nil {
		return planFields{}, fmt.Errorf("ramp: the plan is not YAML: %w", err)
	}
	if n, ok := probe["canary_percent"]; ok {
		if err := n.Decode(&doc.Percent); err != nil {
			return planFields{}, fmt.Errorf("ramp: the plan's canary_percent: %w", err)
		}
	}
	if n, ok := probe["kill_switch"]; ok {
		if err := n.Decode(&doc.Kill); err != nil {
			return planFields{}, fmt.Errorf("ramp: the plan's kill_switch: %w", err)
		}
	}
	return planFields{Percent: doc.Percent, Kill: doc.Kill}, nil
}

// setFields returns the plan with canary_percent and kill_switch set to f,
// changing only those values' text where they are plain scalars of a block
// mapping (so that the history's diff shows just them), else re-encoding
// the document.
func setFields(data []byte, f planFields) ([]byte, error) {
	vals := map[string]string{
		"canary_percent": strconv.FormatFloat(f.Percent, 'f', -1, 64),
		"kill_switch":    strconv.FormatBool(f.Kill),
	}
	out, err := editInPlace(data, vals)
	if err == nil {
		if got, rerr := readFields(out); rerr == nil && got == f {
			return out, nil
		}
	}
	out, err = reencode(data, vals)
	if err != nil {
		return nil, err
	}
	if got, rerr := readFields(out); rerr != nil || got != f {
		return nil, fmt.Errorf("ramp: cannot set canary_percent and kill_switch in this plan (read back %+v, %v)", got, rerr)
	}
	return out, nil
}

var errNotEditable = errors.New("not editable in place")

func editInPlace(data []byte, vals map[string]string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, errNotEditable
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode || root.Style&yaml.FlowStyle != 0 {
		return nil, errNotEditable
	}
	lines := strings.SplitAfter(string(data), "\n")
	var missing []string
	for _, key := range []string{"canary_percent", "kill_switch"} {
		var v *yaml.Node
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == key {
				v = root.Content[i+1]
			}
		}
		if v == nil {
			missing = append(missing, key)
			continue
		}
		if v.Kind != yaml.ScalarNode || v.Style != 0 || v.Line < 1 || v.Line > len(lines) {
			return nil, errNotEditable
		}
		l := lines[v.Line-1]
		start := v.Column - 1
		if start < 0 || start+len(v.Value) > len(l) || l[start:start+len(v.Value)] != v.Value {
			return nil, errNotEditable
		}
		lines[v.Line-1] = l[:start] + vals[key] + l[start+len(v.Value):]
	}
	out := strings.Join(lines, "")
	for _, key := range missing {
		if out != "" && !strings.HasSuffix(out, "\n") {
			out += "\n"
		}
		out += key + ": " + vals[key] + "\n"
	}
	return []byte(out), nil
}

func reencode(data []byte, vals map[string]string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("ramp: the plan is not YAML: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("ramp: the plan is not a YAML mapping")
	}
	root := doc.Content[0]
	root.Style = 0
	for _, key := range []string{"canary_percent", "kill_switch"} {
		tag := ""
		set := false
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == key {
				root.Content[i+1] = &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: vals[key]}
				set = true
			}
		}
		if !set {
			root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key},
				&yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: vals[key]})
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("ramp: encode the plan: %w", err)
	}
	_ = enc.Close()
	return buf.Bytes(), nil
}
