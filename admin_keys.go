package canary

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
)

// checkAdminKeys refuses a POST body whose top-level object repeats a key or
// spells a known key (one of fields) in another case ({"action":"on","ACTION":"off"}).
// encoding/json would quietly take the last of the repeated keys and match
// keys case-insensitively, so two readers of the same body (a proxy that
// logs it, an audit) could disagree on the action. It returns the offending
// key (as the field) and an error naming it; nil when the body is not an
// object or is malformed, which the decoder then reports.
func checkAdminKeys(body []byte, fields []string) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", nil
	}
	var seen []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", nil
		}
		key, ok := tok.(string)
		if !ok {
			return "", nil
		}
		field := truncate(key, 40)
		if field == "" {
			field = "body" // the error names the body: a key with no name is no field
		}
		for _, s := range seen {
			switch {
			case s == key:
				return field, errors.New(field + ": duplicate key")
			case strings.EqualFold(s, key):
				return field, errors.New(field + `: duplicate key (same as "` + truncate(s, 40) + `" but for case)`)
			}
		}
		for _, f := range fields {
			if key != f && strings.EqualFold(key, f) {
				return field, errors.New(field + ": unknown field; keys are case-sensitive; known fields: " + strings.Join(fields, ", "))
			}
		}
		seen = append(seen, key)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return "", nil
		}
	}
	return "", nil
}
